import { bfloat16ToFloat, type DType, halfToFloat, STORAGE, type TensorData } from "./dtype.js";

/** A constant tensor: an initializer, a Constant's value or a tensor attribute. Dims are concrete. */
export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
  doc?: string;
}

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** A tensor from plain numbers (or bigints for 64-bit integer types). */
export function tensor(
  dtype: DType,
  dims: number[],
  values: ArrayLike<number> | ArrayLike<bigint> | TensorData,
): Tensor {
  if (dtype === "string") {
    const enc = new TextEncoder();
    return {
      dtype,
      dims,
      data: Array.from(values as ArrayLike<unknown>, (v) =>
        typeof v === "string" ? enc.encode(v) : (v as Uint8Array),
      ),
    };
  }
  const { ctor, slots } = STORAGE[dtype];
  const n = numel(dims) * slots;
  if ((values as ArrayLike<unknown>).length !== n) {
    throw new Error(
      `tensor(${dtype}, [${dims}]) needs ${n} values, got ${(values as ArrayLike<unknown>).length}`,
    );
  }
  if (values instanceof ctor) return { dtype, dims, data: values };
  const data = new ctor(n);
  const big = ctor === BigInt64Array || ctor === BigUint64Array;
  for (let i = 0; i < n; i++) {
    const v = (values as ArrayLike<number | bigint>)[i]!;
    (data as unknown as (number | bigint)[])[i] = big ? BigInt(v) : Number(v);
  }
  return { dtype, dims, data };
}

export const f32 = (dims: number[], values: ArrayLike<number>): Tensor => tensor("float32", dims, values);
export const i64 = (dims: number[], values: ArrayLike<number> | ArrayLike<bigint>): Tensor =>
  tensor("int64", dims, values);
export const scalarF32 = (v: number): Tensor => f32([], [v]);
export const vecI64 = (values: number[]): Tensor => i64([values.length], values);

/** Values as float32: float16 and bfloat16 are widened; integer types are converted. */
export function toFloat32(t: Tensor): Float32Array {
  if (t.dtype === "float32") return t.data as Float32Array;
  if (t.dtype === "float16" || t.dtype === "bfloat16") {
    const src = t.data as Uint16Array;
    const out = new Float32Array(src.length);
    const conv = t.dtype === "float16" ? halfToFloat : bfloat16ToFloat;
    for (let i = 0; i < src.length; i++) out[i] = conv(src[i]!);
    return out;
  }
  if (t.dtype === "string") throw new Error("cannot convert a string tensor to float32");
  return Float32Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** A float16/bfloat16 tensor widened to float32; other tensors unchanged. */
export function widen(t: Tensor): Tensor {
  if (t.dtype !== "float16" && t.dtype !== "bfloat16") return t;
  return { ...t, dtype: "float32", data: toFloat32(t) };
}

/** Integer values as JS numbers (int64 beyond 2^53 loses precision: use `data` directly for those). */
export function toNumbers(t: Tensor): number[] {
  if (t.dtype === "string") throw new Error("cannot convert a string tensor to numbers");
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}
