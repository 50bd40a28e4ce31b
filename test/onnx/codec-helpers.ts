/** Helpers of the codec tests: random ORT feeds, bitwise output comparison, raw bytes of a typed array. */
import type * as ort from "onnxruntime-node";
import { expect } from "vitest";
import { floatToHalf } from "../../src/onnx/dtype.js";
import { type Tensor, tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { seeded } from "../helpers/random.js";

/** Random feeds for every input ORT reports, symbolic dims set to 2. */
export function randomFeeds(session: ort.InferenceSession, seed: number): Record<string, Tensor> {
  const rand = seeded(seed);
  const feeds: Record<string, Tensor> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) throw new Error(`input ${meta.name} is not a tensor`);
    const dims = meta.shape.map((d) => (typeof d === "number" && d > 0 ? d : 2));
    const n = dims.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, () => rand() * 8 - 4);
    if (meta.type === "float32") feeds[meta.name] = tensor("float32", dims, values);
    else if (meta.type === "float16") feeds[meta.name] = tensor("float16", dims, values.map(floatToHalf));
    else throw new Error(`no random feed for ${meta.type} input ${meta.name}`);
  }
  return feeds;
}

export const bytesOf = (t: Tensor): Buffer => {
  const d = t.data as ArrayBufferView;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};

/** Run both models on the same feeds; every output element must be bitwise equal. */
export async function expectSameOutputs(
  a: Uint8Array | string,
  b: Uint8Array | string,
  seed = 7,
): Promise<number> {
  const sa = await openSession(a, { threads: 1 });
  const sb = await openSession(b, { threads: 1 });
  const feeds = randomFeeds(sa, seed);
  const ra = await run(sa, feeds);
  const rb = await run(sb, feeds);
  expect(Object.keys(rb).sort()).toEqual(Object.keys(ra).sort());
  let elements = 0;
  for (const [k, v] of Object.entries(ra)) {
    expect(rb[k]!.dtype).toBe(v.dtype);
    expect(rb[k]!.dims).toEqual(v.dims);
    expect(bytesOf(rb[k]!).equals(bytesOf(v)), `output ${k} differs`).toBe(true);
    elements += (v.data as ArrayLike<unknown>).length;
  }
  await sa.release();
  await sb.release();
  return elements;
}

export const raw = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
