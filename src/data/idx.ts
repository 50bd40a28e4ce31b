/**
 * IDX files (the MNIST format): magic 0x00 0x00, a type byte, a dimension count, the dimensions as big-endian
 * uint32, then the elements in row-major order, big-endian. Files may be gzip-compressed; the magic bytes decide.
 */
import { DataError } from "./errors.js";
import { DEFAULT_MAX_DECOMPRESSED, gunzipCapped, isGzip, readRegularFile } from "./limits.js";

export type IdxDType = "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";
export type IdxArray = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxData {
  dims: number[];
  dtype: IdxDType;
  data: IdxArray;
}

const TYPES: Record<number, { dtype: IdxDType; size: number }> = {
  8: { dtype: "uint8", size: 1 },
  9: { dtype: "int8", size: 1 },
  11: { dtype: "int16", size: 2 },
  12: { dtype: "int32", size: 4 },
  13: { dtype: "float32", size: 4 },
  14: { dtype: "float64", size: 8 },
};

/**
 * Read an IDX file, gzip-compressed or not. Missing, truncated or corrupt files raise a DataError; so does one
 * that is not a regular file or decompresses past `maxDecompressedBytes`.
 */
export function readIdx(path: string, maxDecompressedBytes = DEFAULT_MAX_DECOMPRESSED): IdxData {
  return parseIdx(readRegularFile(path, "IDX file"), path, maxDecompressedBytes);
}

/** Parse IDX bytes (gzip or raw); `file` names the source in errors. */
export function parseIdx(
  bytes: Uint8Array,
  file?: string,
  maxDecompressedBytes = DEFAULT_MAX_DECOMPRESSED,
): IdxData {
  const raw = isGzip(bytes) ? gunzipCapped(bytes, file, maxDecompressedBytes) : bytes;
  const where = (offset: number) => ({ file, offset });
  if (raw.length < 4)
    throw new DataError(
      `truncated IDX header: ${raw.length} bytes, the header needs at least 4`,
      where(raw.length),
    );
  if (raw[0] !== 0 || raw[1] !== 0) {
    const hex = [...raw.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new DataError(`not an IDX file: magic bytes are ${hex}, expected 00 00 <type> <ndims>`, where(0));
  }
  const type = TYPES[raw[2]!];
  if (!type)
    throw new DataError(`unknown IDX element type 0x${raw[2]!.toString(16).padStart(2, "0")}`, where(2));
  const ndims = raw[3]!;
  if (ndims === 0) throw new DataError("the IDX header declares 0 dimensions", where(3));
  const header = 4 + 4 * ndims;
  if (raw.length < header) {
    throw new DataError(
      `truncated IDX header: ${ndims} dimensions need ${header} header bytes, the file has ${raw.length}`,
      where(raw.length),
    );
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((p, d) => p * d, 1);
  const expected = count * type.size;
  const available = raw.length - header;
  if (available < expected) {
    throw new DataError(
      `truncated IDX data: dims ${dims.join("×")} of ${type.dtype} need ${expected} bytes after the ${header}-byte header, ` +
        `the file has ${available} (expected ${header + expected} bytes in all)`,
      where(raw.length),
    );
  }
  if (available > expected) {
    throw new DataError(
      `${available - expected} unexpected bytes after the data: dims ${dims.join("×")} of ${type.dtype} end at byte ${header + expected}`,
      where(header + expected),
    );
  }
  return { dims, dtype: type.dtype, data: decode(view, header, count, type.dtype) };
}

function decode(view: DataView, at: number, n: number, dtype: IdxDType): IdxArray {
  switch (dtype) {
    case "uint8":
      return new Uint8Array(view.buffer.slice(view.byteOffset + at, view.byteOffset + at + n));
    case "int8":
      return new Int8Array(view.buffer.slice(view.byteOffset + at, view.byteOffset + at + n));
    case "int16": {
      const out = new Int16Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt16(at + 2 * i, false);
      return out;
    }
    case "int32": {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt32(at + 4 * i, false);
      return out;
    }
    case "float32": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(at + 4 * i, false);
      return out;
    }
    case "float64": {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(at + 8 * i, false);
      return out;
    }
  }
}
