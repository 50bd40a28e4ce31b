import { modelOf } from "../onnx/codec.js";
import { type Graph, type Node, topologicalOrder } from "../onnx/ir.js";
import type { Tensor } from "../onnx/tensor.js";
import { openSession, run } from "../runtime/session.js";

/**
 * The constant region of a graph: nodes computed from initializers alone (weight folding, weight quantization,
 * bias quantization), up to but excluding DequantizeLinear nodes. Graph inputs are never constant.
 */
export function constantNodes(g: Graph): Set<Node> {
  const inputs = new Set(g.inputs.map((v) => v.name).filter((n) => !g.initializers.has(n)));
  const known = new Set<string>([...g.initializers.keys()].filter((k) => !inputs.has(k)));
  const out = new Set<Node>();
  for (const n of topologicalOrder(g)) {
    const hasSub = Object.values(n.attrs).some((a) => a.type === "graph" || a.type === "graphs");
    // DequantizeLinear stays a node: its integer input is what the exported model stores
    if (
      hasSub ||
      n.opType === "DequantizeLinear" ||
      n.opType === "RandomNormal" ||
      n.opType === "RandomUniform"
    )
      continue;
    if (n.inputs.every((i) => i === "" || known.has(i))) {
      out.add(n);
      for (const o of n.outputs) if (o) known.add(o);
    }
  }
  return out;
}

/**
 * Evaluate values of the constant region with ONNX Runtime itself (optimisation off), so every number is the one the
 * simulation computed: the int8 weights are what its QuantizeLinear produced, the int32 biases what its Round did.
 */
export async function evaluateConstants(
  g: Graph,
  nodes: Set<Node>,
  values: string[],
): Promise<Map<string, Tensor>> {
  const out = new Map<string, Tensor>();
  const todo = [...new Set(values)].filter((v) => {
    const init = g.initializers.get(v);
    if (init) out.set(v, init);
    return !init;
  });
  if (todo.length === 0) return out;
  const c = new (g.constructor as new () => Graph)();
  c.name = "constants";
  c.nodes = g.nodes.filter((n) => nodes.has(n)).map((n) => ({ ...n }));
  const used = new Set(c.nodes.flatMap((n) => n.inputs));
  for (const [k, t] of g.initializers) if (used.has(k)) c.initializers.set(k, t);
  c.outputs = todo.map((name) => ({ name }));
  const session = await openSession(modelOf(c), { threads: 1, optimization: "disabled" });
  try {
    const res = await run(session, {}, todo);
    for (const v of todo) {
      const t = res[v]!;
      out.set(v, { ...t, dims: [...t.dims], data: (t.data as Float32Array).slice() });
    }
  } finally {
    await session.release();
  }
  return out;
}
