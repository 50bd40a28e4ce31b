/** Helpers of the opset and folding tests: inputs of one-node models, and "ORT agrees before and after". */
import { expect } from "vitest";
import { encodeModel } from "../../src/onnx/codec.js";
import type { Model } from "../../src/onnx/ir.js";
import { normalizeOpset, WORKING_OPSET } from "../../src/onnx/opset.js";
import { f32, i64, numel, type Tensor, toFloat32 } from "../../src/onnx/tensor.js";
import { MODELS } from "../helpers/paths.js";
import { feeds, type In, runOrt, values } from "./shapes-helpers.js";

export { MODELS };
export const x = (shape: (number | string)[], name = "x"): In => ({ name, shape });
export const c64 = (name: string, v: number[]): In => ({ name, init: i64([v.length], v) });
export const cf = (name: string, dims: number[], v?: number[]): In => ({
  name,
  init: f32(dims, v ?? Array.from(values(numel(dims), 5))),
});

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(a.dims).toEqual(b.dims);
  const p = toFloat32(a);
  const q = toFloat32(b);
  let m = 0;
  for (let i = 0; i < p.length; i++) m = Math.max(m, Math.abs(p[i]! - q[i]!));
  return m;
}

/** ORT on the model as written, then ORT on the normalised model: same outputs (to `tol`), opset 17. */
export async function sameAsOrt(m: Model, tol = 0): Promise<Model> {
  const f = feeds(m);
  const before = await runOrt(encodeModel(m), f);
  normalizeOpset(m);
  expect(m.opsets[""]).toBe(WORKING_OPSET);
  const after = await runOrt(m, f);
  for (const [k, v] of Object.entries(before)) {
    expect(after[k]!.dtype, k).toBe(v.dtype);
    if (v.dtype === "bool" || v.dtype === "int64")
      expect(Array.from(after[k]!.data as ArrayLike<unknown>)).toEqual(
        Array.from(v.data as ArrayLike<unknown>),
      );
    else expect(maxAbsDiff(after[k]!, v), k).toBeLessThanOrEqual(tol);
  }
  return m;
}

export const opsOf = (m: Model) => m.graph.nodes.map((n) => n.opType);
