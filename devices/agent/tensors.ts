/**
 * Tensors in a frame's payload: each one's bytes 8-byte aligned, described by a TensorRef in the header.
 *
 * Board-side code: Node built-ins only; installed beside the agent as tensors.mjs.
 */
import type { TensorRef } from "./protocol.js";

/** The typed arrays tensors travel in. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;
type TypedCtor = { new (b: ArrayBuffer, o: number, n: number): TypedArray; BYTES_PER_ELEMENT: number };

export const TYPED: Record<string, TypedCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  float16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
};

/** Lay tensors out in one payload (each 8-byte aligned) and describe them. */
export function packTensors(
  tensors: { name: string; dtype: string; dims: number[]; data: ArrayBufferView }[],
): {
  refs: TensorRef[];
  payload: Buffer;
} {
  const refs: TensorRef[] = [];
  const parts: Buffer[] = [];
  let off = 0;
  for (const t of tensors) {
    const pad = (8 - (off % 8)) % 8;
    if (pad) parts.push(Buffer.alloc(pad));
    off += pad;
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    refs.push({ name: t.name, dtype: t.dtype, dims: t.dims, offset: off, length: bytes.length });
    parts.push(bytes);
    off += bytes.length;
  }
  return { refs, payload: Buffer.concat(parts) };
}

/** A tensor described by `ref` as a typed array over a copy of its bytes. */
export function unpackTensor(ref: TensorRef, payload: Uint8Array): TypedArray {
  const ctor = TYPED[ref.dtype];
  if (!ctor) throw new Error(`tensor '${ref.name}': unsupported dtype ${ref.dtype}`);
  if (ref.offset < 0 || ref.offset + ref.length > payload.length || ref.length % ctor.BYTES_PER_ELEMENT) {
    throw new Error(
      `tensor '${ref.name}': bytes ${ref.offset}+${ref.length} outside the payload of ${payload.length}`,
    );
  }
  const copy = new Uint8Array(ref.length);
  copy.set(payload.subarray(ref.offset, ref.offset + ref.length));
  return new ctor(copy.buffer, 0, ref.length / ctor.BYTES_PER_ELEMENT);
}

/** Top-1 hits of a batch against the labels the host sent along in the payload (null without labels). */
export function countCorrect(
  labelsRef: TensorRef | undefined,
  payload: Uint8Array,
  first: ArrayLike<number>,
): number | null {
  if (!labelsRef) return null;
  const labels = unpackTensor(labelsRef, payload) as BigInt64Array;
  const k = first.length / labels.length;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (first[i * k + j]! > first[i * k + best]!) best = j;
    if (BigInt(best) === labels[i]) correct++;
  }
  return correct;
}
