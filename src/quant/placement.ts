import type { NetModel } from "../nn/model.js";
import { attrFloat, attrInt, cloneGraph, type Graph, type Node, topologicalOrder } from "../onnx/ir.js";
import { inferShapes } from "../onnx/shapes.js";
import { type FakeQuantSpec, QAT_DOMAIN } from "./fake-quant.js";
import {
  intRange,
  isFloatLayer,
  layerConfig,
  type QConfig,
  QConfigError,
  type TensorQConfig,
} from "./qconfig.js";

/**
 * Where fake-quant goes, decided as ONNX Runtime will fuse the exported QDQ model:
 * - weights of Conv, Gemm and MatMul (per output channel when the qconfig says so), biases as int32 with scale
 *   s_input · s_weight;
 * - activations where the QDQ model has a Q/DQ pair: at every activation input of a quantized op (Conv, Gemm, MatMul,
 *   Add, Concat, GlobalAveragePool, AveragePool), traced back through the ops that pass quantized values through
 *   unchanged (MaxPool, Flatten, Reshape, Identity, Squeeze, Unsqueeze, Transpose). A Conv+BN+ReLU group therefore
 *   gets one pair after the ReLU (ORT folds BN and fuses ReLU into the Q), a residual Add's inputs each get one,
 *   and the logits stay float. A layer kept in float (QConfig.keepFloat) has no weight fake-quant and its output is
 *   not quantized where a non-layer op (a residual Add, a Concat, a pool) reads it. Concat inputs share one scale
 *   (QLinearConcat needs none, but the exported model then concatenates integers without requantizing).
 * - a Conv followed only by BatchNormalization is folded (bn-fold.ts).
 */
export interface WeightPoint {
  /** Parameter prefix, e.g. "layer2.0.conv1". */
  layer: string;
  node: string;
  op: "Conv" | "Gemm" | "MatMul";
  weight: string;
  bias?: string;
  axis: number;
  /** Activation point feeding this layer (its scale enters the bias scale). */
  input?: string;
  bn?: {
    node: string;
    gamma: string;
    beta: string;
    mean: string;
    variance: string;
    eps: number;
    output: string;
  };
  spec: FakeQuantSpec;
  scale: string;
  zeroPoint: string;
  cfg: TensorQConfig;
}

export interface ActivationPoint {
  /** The float value quantized (a node output of the float model). */
  value: string;
  layer: string;
  /** Per-sample shape of the value. */
  shape: number[];
  spec: FakeQuantSpec;
  scale: string;
  zeroPoint: string;
  cfg: TensorQConfig;
}

export interface Placement {
  weights: WeightPoint[];
  activations: ActivationPoint[];
}

const PASS_THROUGH = new Set([
  "MaxPool",
  "Flatten",
  "Reshape",
  "Identity",
  "Squeeze",
  "Unsqueeze",
  "Transpose",
]);
const ACT_INPUTS: Record<string, (n: Node, isConst: (v: string) => boolean) => number[]> = {
  Conv: () => [0],
  Gemm: () => [0],
  MatMul: (n, isConst) => [0, 1].filter((i) => !isConst(n.inputs[i]!)),
  Add: (n, isConst) => [0, 1].filter((i) => !isConst(n.inputs[i]!)),
  Concat: (n) => n.inputs.map((_, i) => i),
  GlobalAveragePool: () => [0],
  AveragePool: () => [0],
};
const GROUP_TAIL = new Set(["Relu", "Clip", "BatchNormalization"]);

/** The layer names a qconfig can refer to: Conv/Gemm/MatMul parameter prefixes, in graph order. */
export function quantizableLayers(net: NetModel): string[] {
  const params = new Set(net.params);
  return net.eval.nodes
    .filter(
      (n) =>
        (n.opType === "Conv" || n.opType === "Gemm" || n.opType === "MatMul") && params.has(n.inputs[1]!),
    )
    .map((n) => layerName(n.inputs[1]!));
}

const layerName = (weight: string) => weight.replace(/\.weight$/, "");

export function placeQuant(net: NetModel, q: QConfig): Placement {
  const g = cloneGraph(net.eval);
  inferShapes(g);
  const params = new Set(net.params);
  const layers = quantizableLayers(net);
  const known = new Set(layers);
  for (const name of [...Object.keys(q.layers), ...q.keepFloat]) {
    if (!known.has(name)) {
      throw new QConfigError(
        `qconfig names layer '${name}', which model '${net.name}' does not have; layers: ${layers.join(", ")}`,
      );
    }
  }
  const producers = g.producers();
  const consumers = g.consumers();
  const isConst = (v: string) => g.initializers.has(v) && !params.has(v);
  const resolve = (v: string): string => {
    for (let p = producers.get(v); p && PASS_THROUGH.has(p.opType); p = producers.get(v)) v = p.inputs[0]!;
    return v;
  };
  /** The layer whose output group ends in `v` (for its activation config). */
  const layerOf = (v: string): string => {
    let p = producers.get(v);
    while (p && GROUP_TAIL.has(p.opType)) p = producers.get(p.inputs[0]!);
    if (!p) return "input";
    if ((p.opType === "Conv" || p.opType === "Gemm" || p.opType === "MatMul") && params.has(p.inputs[1]!)) {
      return layerName(p.inputs[1]!);
    }
    if (p.name.startsWith("normalize")) return "input";
    return p.name;
  };
  const perSample = (v: string): number[] => {
    // a constant operand (e.g. the bias an Add applies after a bias-free Conv) has no batch dim: all of it counts
    const init = g.initializers.get(v);
    if (init) return [...init.dims];
    const s = g.valueInfo.get(v)?.shape ?? (v === net.input ? ["batch", ...net.inputShape] : undefined);
    if (!s || s.slice(1).some((d) => typeof d !== "number")) {
      throw new QConfigError(`the shape of '${v}' is not known: run shape inference on the model first`);
    }
    return s.slice(1) as number[];
  };

  const acts = new Map<string, ActivationPoint>();
  const addAct = (v: string, shared?: string) => {
    if (acts.has(v)) return acts.get(v)!;
    const layer = layerOf(v);
    const cfg = known.has(layer) ? layerConfig(q, layer).activation : q.default.activation;
    const shape = perSample(v);
    const base = shared ?? v;
    const p: ActivationPoint = {
      value: v,
      layer,
      shape,
      spec: specFor(
        cfg,
        -1,
        shape.reduce((a, b) => a * b, 1),
      ),
      scale: `${base}.scale`,
      zeroPoint: `${base}.zero_point`,
      cfg,
    };
    acts.set(v, p);
    return p;
  };

  const weights: WeightPoint[] = [];
  for (const n of topologicalOrder(g)) {
    if (n.domain !== "" && n.domain !== "ai.onnx") {
      if (n.domain === QAT_DOMAIN) throw new QConfigError(`model '${net.name}' is already fake-quantized`);
      continue;
    }
    const pick = ACT_INPUTS[n.opType];
    if (!pick) continue;
    const isLayer =
      (n.opType === "Conv" || n.opType === "Gemm" || n.opType === "MatMul") && params.has(n.inputs[1]!);
    if (isLayer && isFloatLayer(q, layerName(n.inputs[1]!))) continue;
    if (!isLayer && (n.opType === "Conv" || n.opType === "Gemm")) continue; // weights computed at run time: float
    // a layer's weight is quantized as a weight (per channel), not as an activation
    const inputs = (isLayer ? [0] : pick(n, isConst)).map((i) => resolve(n.inputs[i]!));
    const shared = n.opType === "Concat" ? n.outputs[0] : undefined;
    // a float layer's output stays float where it meets an Add, Concat or pool (a quantized layer reading it still
    // quantizes its own input)
    for (const v of inputs) if (isLayer || !isFloatLayer(q, layerOf(v))) addAct(v, shared);
    if (!isLayer) continue;
    weights.push(weightPoint(g, n, q, consumers.get(n.outputs[0]!) ?? [], inputs[0], params));
  }
  return { weights, activations: [...acts.values()] };
}

/**
 * The weight fake-quant of a Conv/Gemm/MatMul layer: quantized along its output-channel axis (per channel when the
 * qconfig says so), with the bias it owns, the activation point feeding it, and the BatchNormalization that follows
 * a Conv alone (`next` are the readers of the layer's output), which bn-fold.ts folds into it.
 */
function weightPoint(
  g: Graph,
  n: Node,
  q: QConfig,
  next: Node[],
  input: string | undefined,
  params: Set<string>,
): WeightPoint {
  const weight = n.inputs[1]!;
  const layer = layerName(weight);
  const cfg = layerConfig(q, layer).weight;
  const dims = g.initializers.get(weight)!.dims;
  const axis =
    n.opType === "Conv" ? 0 : n.opType === "Gemm" ? (attrInt(n, "transB", 0) ? 0 : 1) : dims.length - 1;
  const channels = dims[axis]!;
  const perChannelN = dims.reduce((a, b) => a * b, 1) / (cfg.perChannel ? channels : 1);
  const bias = n.inputs[2] && params.has(n.inputs[2]) ? n.inputs[2] : undefined;
  let bn: WeightPoint["bn"];
  if (n.opType === "Conv" && next.length === 1 && next[0]!.opType === "BatchNormalization") {
    const b = next[0]!;
    bn = {
      node: b.name,
      gamma: b.inputs[1]!,
      beta: b.inputs[2]!,
      mean: b.inputs[3]!,
      variance: b.inputs[4]!,
      eps: attrFloat(b, "epsilon", 1e-5),
      output: b.outputs[0]!,
    };
  }
  return {
    layer,
    node: n.name,
    op: n.opType as WeightPoint["op"],
    weight,
    bias,
    axis,
    input,
    bn,
    spec: specFor(cfg, cfg.perChannel ? axis : -1, perChannelN),
    scale: `${weight}.scale`,
    zeroPoint: `${weight}.zero_point`,
    cfg,
  };
}

function specFor(cfg: TensorQConfig, axis: number, n: number): FakeQuantSpec {
  const { qmin, qmax, dtype } = intRange(cfg);
  return {
    qmin,
    qmax,
    dtype,
    axis,
    grad: cfg.grad,
    gradScale: 1 / Math.sqrt(n * qmax),
    learnZeroPoint: cfg.learnZeroPoint && !cfg.symmetric,
  };
}

/** The placement as a JSON table (for checkpoint metadata, `qat export` and printing). */
export function placementTable(p: Placement): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const w of p.weights) {
    rows.push({
      kind: "weight",
      layer: w.layer,
      node: w.node,
      op: w.op,
      tensor: w.weight,
      folded_bn: w.bn?.node ?? null,
      bias: w.bias ?? (w.bn ? "folded" : null),
      input: w.input ?? null,
      scale: w.scale,
      zero_point: w.zeroPoint,
      axis: w.spec.axis,
      bits: w.cfg.bits,
      qmin: w.spec.qmin,
      qmax: w.spec.qmax,
      dtype: w.spec.dtype,
    });
  }
  for (const a of p.activations) {
    rows.push({
      kind: "activation",
      layer: a.layer,
      tensor: a.value,
      scale: a.scale,
      zero_point: a.zeroPoint,
      axis: -1,
      bits: a.cfg.bits,
      qmin: a.spec.qmin,
      qmax: a.spec.qmax,
      dtype: a.spec.dtype,
    });
  }
  return rows;
}

/**
 * Drop the nodes no graph output depends on, and the unused `qat.*` constants. Parameters stay even when unused:
 * they are listed by name elsewhere.
 */
export function pruneDead(g: Graph): void {
  const needed = new Set(g.outputs.map((o) => o.name));
  let keep = new Set<Node>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of g.nodes) {
      if (keep.has(n) || !n.outputs.some((o) => needed.has(o))) continue;
      keep.add(n);
      changed = true;
      for (const i of n.inputs) if (i) needed.add(i);
    }
  }
  g.nodes = g.nodes.filter((n) => keep.has(n));
  keep = new Set();
  for (const k of [...g.initializers.keys()])
    if (k.startsWith("qat.") && !needed.has(k)) g.initializers.delete(k);
  g.invalidate();
}
