/**
 * Per-layer drift attribution: which intermediate tensors to expose on both sides, which layer computes each, what
 * one quantization step of each is, and the first layer whose board values differ from the host's by more than a
 * threshold (in steps).
 *
 * In a QDQ int8 model ORT fuses each DequantizeLinear(s) → float op(s) → QuantizeLinear group into one integer
 * kernel (QLinearConv, QGemm, …). The tensors that exist in both the fused and the unfused graph are the
 * QuantizeLinear outputs: the int8/uint8 activations between the groups. Exposing them as graph outputs keeps the
 * fusion (the fused kernel writes that same value); exposing a DequantizeLinear output instead can stop ORT from
 * folding that DQ into the next kernel. So `all` means every activation QuantizeLinear output, in topological order;
 * validation also checks that the probed model's final output is the plain model's, on both sides.
 */
import { outputStep } from "../src/export/qdq.js";
import { OnnxError } from "../src/onnx/errors.js";
import { attrInt, type Graph, type Node, topologicalOrder } from "../src/onnx/ir.js";
import { toFloat32 } from "../src/onnx/tensor.js";

/**
 * What one quantization step of a compared tensor is:
 * - integer: the tensor is a QuantizeLinear output, so its values are the integers and one step is 1;
 * - dequantize: a DequantizeLinear output, one step is its scale (per channel along its axis);
 * - accumulator: a float output of a quantized Conv/Gemm/MatMul, one step of its int32 sum (s_x·s_w);
 * - range: anything else, one step of 8-bit min-max quantization of the host's values, (max − min) / 255.
 */
export type StepKind = "integer" | "dequantize" | "accumulator" | "range";

export interface StepInfo {
  kind: StepKind;
  /** Step size(s) in the tensor's units (per channel along `axis` when longer than 1); empty for "range". */
  scale: Float32Array;
  axis: number;
  /** integer: the QuantizeLinear's scale (what one step is worth in float). */
  quantScale?: Float32Array;
}

/** The layer that computes a tensor. */
export interface LayerOf {
  /** The node that names the layer: the Conv/Gemm/MatMul of the group when there is one, else its last node. */
  node: string;
  op: string;
  /** The float nodes between the group's DequantizeLinear inputs and the tensor, in graph order. */
  nodes: string[];
  ops: string[];
  /** Position of the tensor's producer in topological order. */
  order: number;
}

const WEIGHTED = new Set([
  "Conv",
  "ConvTranspose",
  "Gemm",
  "MatMul",
  "QLinearConv",
  "QLinearMatMul",
  "QGemm",
]);
const PASS = new Set(["Identity"]);
const QDQ = new Set(["QuantizeLinear", "DequantizeLinear"]);
const NOT_DATA = new Set(["Shape", "Size", "Constant", "ConstantOfShape", "ArgMax", "ArgMin", "NonZero"]);

function isConstant(g: Graph, value: string, producers: Map<string, Node>): boolean {
  if (g.initializers.has(value)) return true;
  const p = producers.get(value);
  return p?.opType === "Constant";
}

/**
 * The tensors `--layers` (no list, or `all`) compares: every activation QuantizeLinear output (weights are
 * quantized constants: not compared), in topological order. A model without QuantizeLinear (a float model) gets
 * every data-dependent node output instead. Graph outputs are left out: they are compared anyway.
 */
export function allProbes(g: Graph): string[] {
  const producers = g.producers();
  const outputs = new Set(g.outputs.map((o) => o.name));
  const order = topologicalOrder(g);
  const qs = order.filter(
    (n) =>
      n.opType === "QuantizeLinear" && !isConstant(g, n.inputs[0]!, producers) && !outputs.has(n.outputs[0]!),
  );
  if (qs.length) return qs.map((n) => n.outputs[0]!);
  const data = new Set(g.inputs.filter((v) => !g.initializers.has(v.name)).map((v) => v.name));
  const out: string[] = [];
  for (const n of order) {
    if (!n.inputs.some((i) => data.has(i))) continue;
    for (const o of n.outputs) {
      if (!o) continue;
      data.add(o);
      if (!NOT_DATA.has(n.opType) && !outputs.has(o)) out.push(o);
    }
  }
  return out;
}

/**
 * The probe list of a `layers` option: `all`, or names — of values, or of nodes (a node stands for its layer's
 * quantized output, else its own first output). A name that is neither is an error naming the tensors there are.
 */
export function probeList(g: Graph, layers: string[] | "all"): string[] {
  if (layers === "all") return allProbes(g);
  const produced = new Set(g.nodes.flatMap((n) => n.outputs));
  const out: string[] = [];
  const push = (v: string): void => {
    if (!out.includes(v)) out.push(v);
  };
  for (const l of layers) {
    if (l === "all") {
      for (const p of allProbes(g)) push(p);
      continue;
    }
    if (produced.has(l)) {
      push(l);
      continue;
    }
    const node = g.nodes.find((n) => n.name === l);
    if (node) {
      const probes = allProbes(g);
      push(probes.find((p) => layerOf(g, p).nodes.includes(l)) ?? node.outputs[0]!);
      continue;
    }
    const known = allProbes(g).slice(0, 8);
    throw new OnnxError(
      `--layers: no node or value is named '${l}'${known.length ? ` (quantized activations: ${known.join(", ")}${known.length === 8 ? ", …" : ""})` : ""}`,
      { value: l },
    );
  }
  return out;
}

/**
 * The layer behind a tensor: through Identity, QuantizeLinear and DequantizeLinear of activations back to the float
 * node that produced it, then back through float nodes up to DequantizeLinear outputs, constants, graph inputs or
 * other compared tensors — the group ORT fuses into one integer kernel.
 */
export function layerOf(g: Graph, tensor: string, stops: ReadonlySet<string> = new Set()): LayerOf {
  const producers = g.producers();
  const order = topologicalOrder(g);
  const pos = new Map(order.map((n, i) => [n, i]));
  const first = producers.get(tensor);
  let p = first;
  while (p && (PASS.has(p.opType) || QDQ.has(p.opType)) && !isConstant(g, p.inputs[0]!, producers)) {
    const up = producers.get(p.inputs[0]!);
    if (!up) break;
    p = up;
  }
  if (!p || QDQ.has(p.opType)) {
    // a quantizer of a graph input (or a tensor nothing float computes)
    const n = first ?? p;
    return {
      node: n?.name ?? tensor,
      op: n?.opType ?? "input",
      nodes: n ? [n.name] : [],
      ops: n ? [n.opType] : [],
      order: n ? (pos.get(n) ?? -1) : -1,
    };
  }
  const group = new Set<Node>([p]);
  const quantized = g.nodes.some((n) => n.opType === "QuantizeLinear");
  const stack = quantized ? [p] : [];
  while (stack.length) {
    const n = stack.pop()!;
    for (const i of n.inputs) {
      if (!i || stops.has(i) || isConstant(g, i, producers)) continue;
      const up = producers.get(i);
      if (!up || QDQ.has(up.opType) || NOT_DATA.has(up.opType) || group.has(up)) continue;
      group.add(up);
      stack.push(up);
    }
  }
  // the Identity nodes between the float op and the tensor belong to it too
  for (let q = first; q && q !== p && PASS.has(q.opType); q = producers.get(q.inputs[0]!)) group.add(q);
  const nodes = [...group].sort((a, b) => (pos.get(a) ?? 0) - (pos.get(b) ?? 0));
  const main = nodes.find((n) => WEIGHTED.has(n.opType)) ?? p;
  return {
    node: main.name,
    op: main.opType,
    nodes: nodes.map((n) => n.name),
    ops: nodes.map((n) => n.opType),
    order: first ? (pos.get(first) ?? -1) : -1,
  };
}

function constantOf(g: Graph, name: string | undefined): Float32Array | undefined {
  if (!name) return undefined;
  const init = g.initializers.get(name);
  if (init) return toFloat32(init);
  const n = g.nodes.find((x) => x.opType === "Constant" && x.outputs[0] === name);
  const v = n?.attrs.value;
  if (v?.type === "tensor") return toFloat32(v.value);
  if (n?.attrs.value_float?.type === "float") return Float32Array.of(n.attrs.value_float.value);
  return undefined;
}

/** How one quantization step of `tensor` is known (see StepKind). */
export function stepOf(g: Graph, tensor: string): StepInfo {
  const producers = g.producers();
  let p = producers.get(tensor);
  while (p && PASS.has(p.opType)) p = producers.get(p.inputs[0]!);
  if (p?.opType === "QuantizeLinear") {
    const s = constantOf(g, p.inputs[1]);
    return { kind: "integer", scale: Float32Array.of(1), axis: -1, ...(s ? { quantScale: s } : {}) };
  }
  if (p?.opType === "DequantizeLinear") {
    const s = constantOf(g, p.inputs[1]);
    if (s) {
      const known = outputStep(g, tensor);
      return {
        kind: known?.kind === "accumulator" ? "accumulator" : "dequantize",
        scale: s,
        axis: s.length > 1 ? attrInt(p, "axis", 1) : -1,
      };
    }
  }
  const known = outputStep(g, tensor);
  if (known) return { kind: known.kind, scale: known.scale, axis: known.axis };
  return { kind: "range", scale: new Float32Array(0), axis: -1 };
}
