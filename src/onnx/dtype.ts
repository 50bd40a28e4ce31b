/** ONNX element types, named as onnxruntime names them, with their TensorProto codes and storage. */
export type DType =
  | "float32"
  | "uint8"
  | "int8"
  | "uint16"
  | "int16"
  | "int32"
  | "int64"
  | "string"
  | "bool"
  | "float16"
  | "float64"
  | "uint32"
  | "uint64"
  | "complex64"
  | "complex128"
  | "bfloat16"
  | "float8e4m3fn"
  | "float8e4m3fnuz"
  | "float8e5m2"
  | "float8e5m2fnuz"
  | "uint4"
  | "int4"
  | "float4e2m1";

/** TensorProto.DataType code of each dtype (onnx.proto). */
export const DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13,
  complex64: 14,
  complex128: 15,
  bfloat16: 16,
  float8e4m3fn: 17,
  float8e4m3fnuz: 18,
  float8e5m2: 19,
  float8e5m2fnuz: 20,
  uint4: 21,
  int4: 22,
  float4e2m1: 23,
};

const BY_CODE = new Map<number, DType>(Object.entries(DTYPE_CODE).map(([k, v]) => [v, k as DType]));

export function dtypeFromCode(code: number): DType | undefined {
  return BY_CODE.get(code);
}

/**
 * How a dtype is held in memory. Float16/bfloat16/float8 keep their raw bits; 4-bit types are unpacked to one
 * element per byte; complex types hold interleaved (re, im) pairs; strings are byte strings.
 */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Uint8Array[];

type NumericArrayCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** Storage array type, and how many array slots each element takes (2 for complex). */
export const STORAGE: Record<Exclude<DType, "string">, { ctor: NumericArrayCtor; slots: number }> = {
  float32: { ctor: Float32Array, slots: 1 },
  float64: { ctor: Float64Array, slots: 1 },
  uint8: { ctor: Uint8Array, slots: 1 },
  bool: { ctor: Uint8Array, slots: 1 },
  int8: { ctor: Int8Array, slots: 1 },
  uint16: { ctor: Uint16Array, slots: 1 },
  int16: { ctor: Int16Array, slots: 1 },
  int32: { ctor: Int32Array, slots: 1 },
  uint32: { ctor: Uint32Array, slots: 1 },
  int64: { ctor: BigInt64Array, slots: 1 },
  uint64: { ctor: BigUint64Array, slots: 1 },
  float16: { ctor: Uint16Array, slots: 1 },
  bfloat16: { ctor: Uint16Array, slots: 1 },
  float8e4m3fn: { ctor: Uint8Array, slots: 1 },
  float8e4m3fnuz: { ctor: Uint8Array, slots: 1 },
  float8e5m2: { ctor: Uint8Array, slots: 1 },
  float8e5m2fnuz: { ctor: Uint8Array, slots: 1 },
  uint4: { ctor: Uint8Array, slots: 1 },
  int4: { ctor: Int8Array, slots: 1 },
  float4e2m1: { ctor: Uint8Array, slots: 1 },
  complex64: { ctor: Float32Array, slots: 2 },
  complex128: { ctor: Float64Array, slots: 2 },
};

/** Bits one element occupies in raw_data. */
export function bitsPerElement(dtype: DType): number {
  if (dtype === "string") throw new Error("string tensors have no fixed element size");
  if (dtype === "uint4" || dtype === "int4" || dtype === "float4e2m1") return 4;
  const { ctor, slots } = STORAGE[dtype];
  return ctor.BYTES_PER_ELEMENT * 8 * slots;
}

export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64" || dtype === "float16" || dtype === "bfloat16";
}

export function isInteger(dtype: DType): boolean {
  return /^u?int(4|8|16|32|64)$/.test(dtype);
}

/** IEEE half bits to a float32 value. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 value to IEEE half bits, rounding to nearest even. */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** bfloat16 bits to a float32 value. */
export function bfloat16ToFloat(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}
