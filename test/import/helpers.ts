import { modelOf } from "../../src/onnx/codec.js";
import { type Dim, Graph, type Model } from "../../src/onnx/ir.js";
import type { Tensor } from "../../src/onnx/tensor.js";
import { f32, numel } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { seeded } from "../helpers/random.js";

/** A float tensor of seeded values in [-1, 1). */
export function randomF32(dims: number[], seed: number, scale = 1): Tensor {
  const r = seeded(seed);
  return f32(
    dims,
    Array.from({ length: numel(dims) }, () => (2 * r() - 1) * scale),
  );
}

/** A small model built by hand: one float input `x`, the output `y`, nodes added by `build`. */
export function handModel(inputShape: Dim[], build: (g: Graph) => string, opset = 17): Model {
  const g = new Graph();
  g.name = "hand";
  g.inputs.push({ name: "x", dtype: "float32", shape: inputShape });
  const y = build(g);
  g.nodes.at(-1)!.outputs = ["y"];
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === y ? "y" : i));
  g.outputs.push({ name: "y", dtype: "float32" });
  return modelOf(g, { "": opset });
}

/** Run a model's first output on `x`. */
export async function runModel(model: Model, feeds: Record<string, Tensor>): Promise<Tensor> {
  const s = await openSession(model, { threads: 1 });
  try {
    const out = await run(s, feeds);
    return out[model.graph.outputs[0]!.name]!;
  } finally {
    await s.release();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
