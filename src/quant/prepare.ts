import { cloneGraph, type Graph, type Node, sortGraph } from "../onnx/ir.js";
import { inferShapes } from "../onnx/shapes.js";
import { type Tensor, tensor } from "../onnx/tensor.js";
import type { NetModel } from "../nn/model.js";
import { type BnRef, foldedBias, foldedWeight, foldFactor, perChannel } from "./bn-fold.js";
import { emitFakeQuant, type FakeQuantSpec, lowerFakeQuant } from "./fake-quant.js";
import { type Placement, pruneDead, type WeightPoint } from "./placement.js";
import "./ste.js";

export interface PrepareOptions {
  /** BN statistics frozen: the train graph uses the folded form on running statistics and stops updating them. */
  bnFrozen?: boolean;
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
  const put = (name: string, t: Tensor, learn: boolean) => {
    train.initializers.set(name, t);
    ev.initializers.set(name, t);
    if (learn && !learned.has(name)) {
      learned.add(name);
      params.push(name);
    }
  };
  const need = (name: string): Tensor => {
    const t = qparams.get(name);
    if (!t) throw new Error(`no value for quantization parameter '${name}': calibrate the model first`);
    return t;
  };
  for (const p of [...placement.weights, ...placement.activations]) {
    put(p.scale, need(p.scale), p.spec.grad !== "ste");
    put(p.zeroPoint, need(p.zeroPoint), p.spec.learnZeroPoint);
  }
  const updates = new Map(float.updates);
  const actScale = new Map(placement.activations.map((a) => [a.value, a]));

  for (const [g, mode] of [
    [ev, "eval"],
    [train, opts.bnFrozen ? "frozen" : "train"],
  ] as const) {
    const byName = new Map(g.nodes.map((n) => [n.name, n]));
    for (const w of placement.weights) {
      const node = byName.get(w.node);
      if (!node) throw new Error(`layer '${w.layer}': node '${w.node}' is missing from the ${mode} graph`);
      quantizeLayer(g, node, w, mode, actScale.get(w.input ?? "")?.scale, byName);
    }
    for (const a of placement.activations) {
      const users = g.nodes.filter((n) => n.inputs.includes(a.value));
      const y = emitFakeQuant(g, a.value, a.scale, a.zeroPoint, a.spec, { name: `${a.value}.fake_quant` });
      for (const n of users) n.inputs = n.inputs.map((i) => (i === a.value ? y : i));
    }
    if (mode === "frozen") freezeBnUpdates(g, placement, updates);
    g.invalidate();
    sortGraph(g);
  }
  lowerFakeQuant(ev);
  pruneDead(ev);
  return { ...float, train, eval: ev, params, buffers: [...float.buffers], updates };
}

function quantizeLayer(
  g: Graph,
  node: Node,
  w: WeightPoint,
  mode: "eval" | "train" | "frozen",
  inputScale: string | undefined,
  byName: Map<string, Node>,
): void {
  const rank = g.initializers.get(w.weight)!.dims.length;
  let weight = w.weight;
  let bias = w.bias;
  let factor: string | undefined;
  if (w.bn) {
    const bn: BnRef = w.bn;
    factor = foldFactor(g, bn, w.layer);
    weight = foldedWeight(g, w.weight, factor, rank, w.layer);
    if (mode !== "train") bias = foldedBias(g, w.bias, bn, factor, w.layer);
  }
  const wq = emitFakeQuant(g, weight, w.scale, w.zeroPoint, w.spec, {
    name: `${w.weight}.fake_quant`,
    shape: g.initializers.get(w.weight)!.dims,
  });
  node.inputs[1] = wq;
  if (bias && inputScale && !(w.bn && mode === "train")) {
    // int32 bias with scale s_input · s_weight, as the integer kernels add it
    const bscale = g.op("Mul", [inputScale, w.scale], {}, { name: `${w.layer}.bias_scale`, output: g.uniqueName(`${w.layer}.bias.scale`) });
    const zero = g.initializers.has("qat.int32_zero") ? "qat.int32_zero" : g.constant("qat.int32_zero", tensor("int32", [], [0]));
    const spec: FakeQuantSpec = { qmin: -2147483648, qmax: 2147483647, dtype: "int32", axis: -1, grad: "ste", gradScale: 1, learnZeroPoint: false };
    const len = w.bn ? g.initializers.get(w.bn.beta)!.dims : g.initializers.get(bias)!.dims;
    node.inputs[2] = emitFakeQuant(g, bias, bscale, zero, spec, { name: `${w.layer}.bias.fake_quant`, shape: len });
  } else if (bias) node.inputs[2] = bias;
  if (!w.bn) return;
  const bnNode = byName.get(w.bn.node);
  if (!bnNode) throw new Error(`layer '${w.layer}': BatchNormalization '${w.bn.node}' is missing`);
  if (mode === "train") {
    // Conv on the quantized folded weight, divided by f: BatchNormalization (batch statistics) follows as before
    const raw = g.uniqueName(`${w.layer}.conv_folded`);
    const out = node.outputs[0]!;
    node.outputs[0] = raw;
    let y = g.op("Div", [raw, perChannel(g, factor!, rank - 2, `${w.layer}.unfold`)], {}, { name: `${w.layer}.unfold`, output: w.bias ? undefined : out });
    if (w.bias) y = g.op("Add", [y, perChannel(g, w.bias, rank - 2, `${w.layer}.bias_c`)], {}, { name: `${w.layer}.add_bias`, output: out });
    return;
  }
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
