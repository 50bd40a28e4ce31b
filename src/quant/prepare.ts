import type { NetModel } from "../nn/model.js";
import { cloneGraph, type Graph, type Node, sortGraph } from "../onnx/ir.js";
import { inferShapes } from "../onnx/shapes.js";
import { type Tensor, tensor } from "../onnx/tensor.js";
import { type BnRef, foldedBias, foldedWeight, foldFactor, unfoldedWeight, weightFactor } from "./bn-fold.js";
import { emitFakeQuant, type FakeQuantSpec, lowerFakeQuant } from "./fake-quant.js";
import { type ObservedValues, observeActivation, observeWeight } from "./observe-graph.js";
import { type Placement, pruneDead, type WeightPoint } from "./placement.js";
import { MIN_SCALE } from "./qparams.js";
import "./ste.js";

export interface PrepareOptions {
  /** BN statistics frozen: the train graph uses the folded form on running statistics and stops updating them. */
  bnFrozen?: boolean;
  /** Observers active (observe-graph.ts): scales follow moving-average min-max (activations) and the weights' max. */
  observing?: boolean;
}

/**
 * The fake-quantized model: a NetModel whose train and eval graphs compute what the int8 model will, with the
 * quantization parameters as initializers named `<tensor>.scale` / `<tensor>.zero_point` (learned scales and
 * zero points are parameters). The eval graph is lowered to QuantizeLinear/DequantizeLinear and has no
 * BatchNormalization; the train graph keeps ai.qat FakeQuantize nodes for autodiff (lower the training step
 * with `lowerFakeQuant` before running it).
 */
export function applyQuant(
  float: NetModel,
  placement: Placement,
  qparams: Map<string, Tensor>,
  opts: PrepareOptions = {},
): NetModel {
  const train = cloneGraph(float.train);
  const ev = cloneGraph(float.eval);
  inferShapes(train);
  inferShapes(ev);
  const params = [...float.params];
  const learned = new Set<string>();
  const rules = new Map(float.rules ?? []);
  const put = (name: string, t: Tensor, learn: boolean, scale = false) => {
    train.initializers.set(name, t);
    ev.initializers.set(name, t);
    if (learn && !learned.has(name)) {
      learned.add(name);
      params.push(name);
      // learned scales stay positive (mirrored at zero) and, under Adam, move relative to their calibrated size
      if (scale) rules.set(name, { positive: MIN_SCALE, relativeTo: t });
    }
  };
  const need = (name: string): Tensor => {
    const t = qparams.get(name);
    if (!t) throw new Error(`no value for quantization parameter '${name}': calibrate the model first`);
    return t;
  };
  const isObserved = (p: { cfg: { symmetric: boolean } }, kind: "weight" | "activation") =>
    !!opts.observing && (kind === "activation" || p.cfg.symmetric);
  const buffers = [...float.buffers];
  for (const [kind, list] of [
    ["weight", placement.weights],
    ["activation", placement.activations],
  ] as const) {
    for (const p of list) {
      const observedHere = isObserved(p, kind);
      put(p.scale, need(p.scale), p.spec.grad !== "ste" && !observedHere, true);
      put(p.zeroPoint, need(p.zeroPoint), p.spec.learnZeroPoint && !observedHere);
      if (observedHere) buffers.push(p.scale, p.zeroPoint);
    }
  }
  const updates = new Map(float.updates);
  const actScale = new Map(placement.activations.map((a) => [a.value, a]));

  for (const [g, mode] of [
    [ev, "eval"],
    [train, opts.bnFrozen ? "frozen" : "train"],
  ] as const) {
    const byName = new Map(g.nodes.map((n) => [n.name, n]));
    const observed: ObservedValues | undefined =
      opts.observing && mode !== "eval"
        ? { buffers: new Map(), updates: new Map(), current: new Map() }
        : undefined;
    const observerNodes = new Set<Node>();
    if (observed) {
      for (const a of placement.activations) {
        const before = g.nodes.length;
        observeActivation(g, a, need(a.scale), need(a.zeroPoint), observed);
        for (const n of g.nodes.slice(before)) observerNodes.add(n);
      }
    }
    const cur = (name: string) => observed?.current.get(name) ?? name;
    for (const w of placement.weights) {
      const node = byName.get(w.node);
      if (!node) throw new Error(`layer '${w.layer}': node '${w.node}' is missing from the ${mode} graph`);
      const input = actScale.get(w.input ?? "");
      quantizeLayer(
        g,
        node,
        w,
        mode,
        input && cur(input.scale),
        byName,
        observed && w.cfg.symmetric ? observed : undefined,
      );
    }
    for (const a of placement.activations) {
      const users = g.nodes.filter((n) => !observerNodes.has(n) && n.inputs.includes(a.value));
      const spec = observed ? { ...a.spec, grad: "ste" as const, learnZeroPoint: false } : a.spec;
      const y = emitFakeQuant(g, a.value, cur(a.scale), cur(a.zeroPoint), spec, {
        name: `${a.value}.fake_quant`,
      });
      for (const n of users) n.inputs = n.inputs.map((i) => (i === a.value ? y : i));
    }
    if (observed) {
      // the observer statistics live in the train graph only (checkpoints keep them as training state)
      for (const k of observed.buffers.keys()) buffers.push(k);
      for (const [k, v] of observed.updates) updates.set(k, v);
    }
    if (mode === "frozen") freezeBnUpdates(g, placement, updates);
    g.invalidate();
    sortGraph(g);
  }
  lowerFakeQuant(ev);
  pruneDead(ev);
  return { ...float, train, eval: ev, params, buffers, updates, rules };
}

function quantizeLayer(
  g: Graph,
  node: Node,
  w: WeightPoint,
  mode: "eval" | "train" | "frozen",
  inputScale: string | undefined,
  byName: Map<string, Node>,
  observed?: ObservedValues,
): void {
  const rank = g.initializers.get(w.weight)!.dims.length;
  let weight = w.weight;
  let bias = w.bias;
  let fb: string | undefined;
  if (w.bn) {
    const bn: BnRef = w.bn;
    const factor = foldFactor(g, bn, w.layer);
    fb = weightFactor(g, factor, rank, w.layer);
    weight = foldedWeight(g, w.weight, factor, rank, w.layer, fb);
    if (mode !== "train") bias = foldedBias(g, w.bias, bn, factor, w.layer);
  }
  let [wScale, wZero, wSpec] = [w.scale, w.zeroPoint, w.spec];
  if (observed) {
    observeWeight(g, w, weight, rank, observed);
    [wScale, wZero, wSpec] = [
      observed.current.get(w.scale)!,
      observed.current.get(w.zeroPoint)!,
      { ...w.spec, grad: "ste" as const },
    ];
  }
  const wq = emitFakeQuant(g, weight, wScale, wZero, wSpec, {
    name: `${w.weight}.fake_quant`,
    shape: g.initializers.get(w.weight)!.dims,
  });
  // batch statistics: the conv runs on q(w·f)/f and adds the float bias, i.e. Conv(x, q(w·f))/f + b, and the
  // BatchNormalization (batch statistics) follows as before (bn-fold.ts)
  node.inputs[1] = w.bn && mode === "train" ? unfoldedWeight(g, wq, fb!, w.layer) : wq;
  if (bias && inputScale && !(w.bn && mode === "train")) {
    // int32 bias with scale s_input · s_weight, as the integer kernels add it
    const bscale = g.op(
      "Mul",
      [inputScale, wScale],
      {},
      { name: `${w.layer}.bias_scale`, output: g.uniqueName(`${w.layer}.bias.scale`) },
    );
    const zero = g.initializers.has("qat.int32_zero")
      ? "qat.int32_zero"
      : g.constant("qat.int32_zero", tensor("int32", [], [0]));
    const spec: FakeQuantSpec = {
      qmin: -2147483648,
      qmax: 2147483647,
      dtype: "int32",
      axis: -1,
      grad: "ste",
      gradScale: 1,
      learnZeroPoint: false,
    };
    const len = w.bn ? g.initializers.get(w.bn.beta)!.dims : g.initializers.get(bias)!.dims;
    node.inputs[2] = emitFakeQuant(g, bias, bscale, zero, spec, {
      name: `${w.layer}.bias.fake_quant`,
      shape: len,
    });
  } else if (bias) node.inputs[2] = bias;
  if (!w.bn) return;
  const bnNode = byName.get(w.bn.node);
  if (!bnNode) throw new Error(`layer '${w.layer}': BatchNormalization '${w.bn.node}' is missing`);
  if (mode === "train") return;
  // eval / frozen statistics: the conv writes the BN's output; BN is gone
  node.outputs[0] = w.bn.output;
  g.nodes = g.nodes.filter((n) => n !== bnNode);
}

/** Frozen statistics: the BN buffers' next values are their current ones; the statistics nodes become dead. */
function freezeBnUpdates(g: Graph, placement: Placement, updates: Map<string, string>): void {
  const producers = g.producers();
  for (const w of placement.weights) {
    if (!w.bn) continue;
    const prefix = w.bn.mean.replace(/\.running_mean$/, "");
    for (const buf of [w.bn.mean, w.bn.variance, `${prefix}.num_batches_tracked`]) {
      const next = updates.get(buf);
      if (!next) continue;
      const p = producers.get(next);
      if (p) g.nodes = g.nodes.filter((n) => n !== p);
      g.op("Identity", [buf], {}, { name: `${buf}.frozen`, output: next });
    }
  }
  g.invalidate();
  pruneDead(g);
}
