/** Inputs of the one-node shape-inference models, and the two checks they go through: ORT agrees, or OnnxError. */
import { expect } from "vitest";
import { OnnxError } from "../../src/onnx/errors.js";
import type { Dim, Model } from "../../src/onnx/ir.js";
import { inferModelShapes } from "../../src/onnx/shapes.js";
import { f32, i64, numel } from "../../src/onnx/tensor.js";
import { MODELS } from "../helpers/paths.js";
import { feeds, type In, runOrt } from "./shapes-helpers.js";

export { MODELS };
export const BATCH = 3;
export const x = (shape: Dim[], name = "x"): In => ({ name, shape });
export const c64 = (name: string, v: number[]): In => ({ name, init: i64([v.length], v) });
export const cf = (name: string, dims: number[], v?: number[]): In => ({
  name,
  init: f32(dims, v ?? Array.from({ length: numel(dims) }, (_, i) => ((i * 7) % 5) / 4 - 0.5)),
});

/** Infer the one node's outputs and check them against the dims (and types) ORT produces. */
export async function agreesWithOrt(m: Model): Promise<Dim[][]> {
  const known = inferModelShapes(m);
  const out = await runOrt(m, feeds(m, BATCH));
  const inferred = m.graph.outputs.map((o) => known.get(o.name)!.shape!);
  m.graph.outputs.forEach((o, k) => {
    const dims = inferred[k]!.map((d) => (typeof d === "string" ? BATCH : d));
    expect(dims, `${o.name}`).toEqual(out[o.name]!.dims);
    expect(known.get(o.name)!.dtype, `${o.name} dtype`).toBe(out[o.name]!.dtype);
  });
  return inferred;
}

/** The OnnxError a model's inference raises. */
export function inferError(m: Model): OnnxError {
  try {
    inferModelShapes(m);
  } catch (e) {
    expect(e).toBeInstanceOf(OnnxError);
    return e as OnnxError;
  }
  throw new Error("expected an OnnxError");
}
