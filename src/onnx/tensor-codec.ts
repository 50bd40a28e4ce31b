/**
 * TensorProto ⇄ Tensor: every storage form a file may use (raw_data, the typed repeated fields, packed 4-bit,
 * external data), checked against the dims before anything is allocated; written back as raw_data.
 */
import Long from "long";
import { bitsPerElement, DTYPE_CODE, type DType, dtypeFromCode, halfToFloat, STORAGE } from "./dtype.js";
import { OnnxError } from "./errors.js";
import { readExternal } from "./external-data.js";
import { DATA_LOCATION, has, type Msg, num } from "./proto.js";
import { numel, type Tensor } from "./tensor.js";

/** Largest tensor the decoder will materialise from a file (elements). Bigger claims are refused, not allocated. */
const MAX_ELEMENTS = 2 ** 31;

/** What decoding needs to know of the file: its name for errors, its folder for external data, whether to widen. */
export interface DecodeContext {
  file?: string;
  dir?: string;
  widen: boolean;
}

export function decodeTensor(t: Msg, ctx: DecodeContext = { widen: false }, where = t.name ?? ""): Tensor {
  const err = (msg: string) => new OnnxError(`tensor '${where}': ${msg}`, { file: ctx.file });
  const dtype = dtypeFromCode(t.data_type ?? 0);
  if (!dtype) throw err(`unknown data type ${t.data_type}`);
  const dims: number[] = t.dims.map(num);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw err(`invalid dims [${dims}]`);
  const n = numel(dims);
  if (n > MAX_ELEMENTS) throw err(`dims [${dims}] claim ${n} elements, more than qat will load`);
  if (has(t, "segment")) throw err("segmented tensors are not supported");
  const out: Tensor = { dtype, dims, data: new Uint8Array() };
  if (has(t, "doc_string")) out.doc = t.doc_string;
  if (dtype === "string") {
    if (t.string_data.length !== n) throw err(`has ${t.string_data.length} strings for ${n} elements`);
    out.data = [...t.string_data];
    return out;
  }
  const { ctor, slots } = STORAGE[dtype];
  const count = n * slots;
  let raw: Uint8Array | undefined;
  if (
    has(t, "data_location") &&
    t.data_location !== DATA_LOCATION.DEFAULT &&
    t.data_location !== DATA_LOCATION.EXTERNAL
  ) {
    throw err(`unknown data_location ${t.data_location}`);
  }
  if (t.data_location === DATA_LOCATION.EXTERNAL) raw = readExternal(t, ctx, where);
  else if (has(t, "raw_data")) raw = t.raw_data;
  if (raw) {
    const bits = bitsPerElement(dtype);
    const expect = Math.ceil((n * bits) / 8);
    if (raw.length !== expect)
      throw err(`raw data has ${raw.length} bytes, dims [${dims}] of ${dtype} need ${expect}`);
    if (bits === 4) out.data = unpack4(raw, n, dtype);
    else {
      const copy = new Uint8Array(raw); // aligned copy
      out.data = new ctor(copy.buffer, 0, count);
    }
  } else {
    const field = typedField(dtype);
    const src: ArrayLike<unknown> = t[field];
    if (bitsPerElement(dtype) === 4) {
      const bytes = Uint8Array.from(src as ArrayLike<number>, (v) => num(v) & 0xff);
      if (bytes.length !== Math.ceil(n / 2)) throw err(`has ${bytes.length} packed values for ${n} elements`);
      out.data = unpack4(bytes, n, dtype);
    } else {
      if (src.length !== count)
        throw err(`has ${src.length} values in ${field} for dims [${dims}] (${count} needed)`);
      const data = new ctor(count);
      const big = ctor === BigInt64Array || ctor === BigUint64Array;
      for (let i = 0; i < count; i++) {
        const v = src[i];
        (data as unknown as (number | bigint)[])[i] = big
          ? Long.isLong(v)
            ? BigInt((v as Long).toString())
            : BigInt(v as number)
          : num(v);
      }
      out.data = data;
    }
  }
  if (ctx.widen && (dtype === "float16" || dtype === "bfloat16")) {
    return { ...out, dtype: "float32", data: toF32Bits(out) };
  }
  return out;
}

function toF32Bits(t: Tensor): Float32Array {
  const src = t.data as Uint16Array;
  const o = new Float32Array(src.length);
  if (t.dtype === "bfloat16") {
    const u = new Uint32Array(o.buffer);
    for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  } else {
    for (let i = 0; i < src.length; i++) o[i] = halfToFloat(src[i]!);
  }
  return o;
}

function typedField(dtype: DType): string {
  switch (dtype) {
    case "float32":
    case "complex64":
      return "float_data";
    case "float64":
    case "complex128":
      return "double_data";
    case "int64":
      return "int64_data";
    case "uint32":
    case "uint64":
      return "uint64_data";
    default:
      return "int32_data";
  }
}

function unpack4(bytes: Uint8Array, n: number, dtype: DType): Int8Array | Uint8Array {
  const out = dtype === "int4" ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let v = (bytes[i >> 1]! >> ((i & 1) * 4)) & 0xf;
    if (dtype === "int4" && v >= 8) v -= 16;
    out[i] = v;
  }
  return out;
}

function pack4(data: Int8Array | Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 2));
  for (let i = 0; i < data.length; i++) out[i >> 1]! |= (data[i]! & 0xf) << ((i & 1) * 4);
  return out;
}

/** A TensorProto message (plain object for ModelProto.encode) holding `t` as raw_data, 4-bit values packed. */
export function encodeTensor(t: Tensor, name?: string): Msg {
  const out: Msg = { dims: t.dims, data_type: DTYPE_CODE[t.dtype] };
  if (name !== undefined) out.name = name;
  if (t.doc !== undefined) out.doc_string = t.doc;
  if (t.dtype === "string") out.string_data = t.data;
  else if (bitsPerElement(t.dtype) === 4) out.raw_data = pack4(t.data as Int8Array | Uint8Array);
  else {
    const d = t.data as Exclude<Tensor["data"], Uint8Array[]>;
    out.raw_data = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  }
  return out;
}
