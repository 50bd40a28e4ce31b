/**
 * Per-tensor QuantizeLinear/DequantizeLinear with one-element scales and zero points shaped [1] become true scalars
 * (shape []). PyTorch's exporter writes FakeQuantize's qparams as 1-element tensors; the ONNX spec accepts them for
 * Q/DQ, but ONNX Runtime's QDQ fusion copies them into QLinearAdd/QLinearMul/QLinearConv…, whose shape inference
 * requires scalars, so the session fails to open ("Node (/Add) Op (QLinearAdd) [TypeInferenceError] Scale and
 * Zero-point must be a scalar"). Same values, same graph: only the shape of those tensors changes. A foreign int8
 * model is normalised this way when it is loaded for evaluation, parity checks and on-board validation.
 *
 * A one-element 1-D scale is per-tensor whatever the `axis` attribute says (a per-axis one would need the axis to
 * have length 1, where both readings agree; ORT itself treats it as per-tensor), so every one-element scale or zero
 * point is rewritten; longer ones (per-axis) are left alone. Sources followed: initializers, Constant nodes, and
 * Identity chains over them (torch's constant folding shares zero points through Identity). A scale fed as a graph
 * input is not a stored constant and is left alone.
 */
import { type Graph, getAttr, type Model, type Node, subgraphs } from "./ir.js";
import { numel, type Tensor } from "./tensor.js";

export interface QdqScalarReport {
  /** The Q/DQ nodes changed and which of their inputs became scalars (by the name they had). */
  nodes: { node: string; opType: string; inputs: string[] }[];
}

const QDQ = new Set(["QuantizeLinear", "DequantizeLinear"]);

/** Rewrite `model` in place (its subgraphs too); returns what changed (nothing for a model already scalar). */
export function normalizeQdqScalars(model: Model): QdqScalarReport {
  const report: QdqScalarReport = { nodes: [] };
  normalizeGraph(model.graph, report);
  return report;
}

function normalizeGraph(g: Graph, report: QdqScalarReport): void {
  const producers = new Map<string, Node>();
  for (const n of g.nodes) for (const o of n.outputs) if (o) producers.set(o, n);
  const scalarOf = new Map<string, string>();
  for (const n of g.nodes) {
    for (const s of subgraphs(n)) normalizeGraph(s, report);
    const isDefault = n.domain === "" || n.domain === "ai.onnx";
    if (!isDefault || !QDQ.has(n.opType)) continue;
    const changed: string[] = [];
    for (const slot of [1, 2]) {
      const name = n.inputs[slot];
      if (!name) continue;
      const t = sourceTensor(g, producers, name);
      if (!t || t.dims.length === 0 || numel(t.dims) !== 1) continue;
      let scalar = scalarOf.get(name);
      if (!scalar) {
        scalar = g.constant(`${name}_scalar`, { dtype: t.dtype, dims: [], data: t.data });
        scalarOf.set(name, scalar);
      }
      n.inputs[slot] = scalar;
      changed.push(name);
    }
    if (changed.length > 0) report.nodes.push({ node: n.name, opType: n.opType, inputs: changed });
  }
  if (scalarOf.size > 0) pruneUnused(g, new Set(scalarOf.keys()));
}

/** The stored tensor behind a value: an initializer, a Constant node's value, or either through Identity nodes. */
function sourceTensor(g: Graph, producers: Map<string, Node>, name: string): Tensor | undefined {
  for (let v = name, hops = 0; hops < 64; hops++) {
    const init = g.initializers.get(v);
    if (init) return init;
    const p = producers.get(v);
    if (!p || (p.domain !== "" && p.domain !== "ai.onnx")) return undefined;
    if (p.opType === "Constant") return getAttr(p, "value", "tensor")?.value;
    if (p.opType !== "Identity" || !p.inputs[0]) return undefined;
    v = p.inputs[0];
  }
  return undefined;
}

/** Drop what fed only the replaced inputs: their initializers, and Identity/Constant nodes no one reads any more. */
function pruneUnused(g: Graph, replaced: Set<string>): void {
  let candidates = replaced;
  while (candidates.size > 0) {
    const read = new Set<string>(g.outputs.map((o) => o.name));
    for (const n of g.nodes) for (const i of n.inputs) if (i) read.add(i);
    const next = new Set<string>();
    for (const v of candidates) {
      if (read.has(v) || g.inputs.some((i) => i.name === v)) continue;
      if (g.initializers.delete(v)) continue;
      const k = g.nodes.findIndex((n) => n.outputs.length === 1 && n.outputs[0] === v);
      const p = g.nodes[k];
      if (!p || !["Identity", "Constant"].includes(p.opType) || (p.domain !== "" && p.domain !== "ai.onnx"))
        continue;
      g.nodes.splice(k, 1);
      if (p.inputs[0]) next.add(p.inputs[0]);
    }
    candidates = next;
  }
  g.invalidate();
}
