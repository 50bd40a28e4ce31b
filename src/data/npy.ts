import { ArrayDataset, checkLabels, type SampleStore } from "./dataset.js";
import { DataError } from "./errors.js";
import { readInput } from "./files.js";

/** A decoded NPY array, in native byte order. 64-bit integers come as exact float64 (|v| < 2^53). */
export interface NpyArray {
  /** numpy's kind and size, e.g. "u1", "f4", "i8". */
  dtype: string;
  shape: number[];
  data: SampleStore;
  /** Byte offset of the first element in the file, for error messages. */
  dataOffset: number;
}

const SUPPORTED = new Set(["b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"]);
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Parse an NPY file (format versions 1–3; C order; bool, integer and float dtypes of either byte order). */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new DataError("not an NPY file (no \\x93NUMPY magic); save the array with numpy.save", {
      file,
      offset: 0,
    });
  }
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new DataError("truncated NPY header", { file, offset: bytes.length });
    headerLen = dv.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new DataError(`NPY format version ${major} is not supported (1, 2, 3 are)`, { file, offset: 6 });
  }
  const dataOffset = headerStart + headerLen;
  if (dataOffset > bytes.length) {
    throw new DataError(`truncated NPY header: it claims ${headerLen} bytes, the file ends first`, {
      file,
      offset: bytes.length,
    });
  }
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(headerStart, dataOffset),
  );
  const at = { file, offset: headerStart };

  if (/['"]descr['"]\s*:\s*\[/.test(header)) {
    throw new DataError("structured (record) arrays are not supported; save plain x and y arrays", at);
  }
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new DataError(`unreadable NPY header ${JSON.stringify(header.trim())}`, at);
  }
  if (fortran === "True") {
    throw new DataError(
      "array is in Fortran (column-major) order; save it with numpy.save(path, numpy.ascontiguousarray(a))",
      at,
    );
  }
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s.replace(/L$/, "")));
  if (shape.some((d) => !(Number.isInteger(d) && d >= 0))) {
    throw new DataError(`bad shape (${shapeText}) in the NPY header`, at);
  }

  const m = /^([<>|=])([a-zA-Z])(\d+)$/.exec(descr);
  const order = m?.[1];
  const kind = m?.[2];
  const itemSize = Number(m?.[3]);
  if (!m || kind === "O") {
    throw new DataError(
      `dtype ${JSON.stringify(descr)} is not supported (object arrays cannot be read); ` +
        "save numeric arrays (bool, int, uint, float16/32/64)",
      at,
    );
  }
  const dtype = `${kind}${itemSize}`;
  if (!SUPPORTED.has(dtype)) {
    throw new DataError(
      `dtype ${dtype} is not supported; save numeric arrays (bool, int8–64, uint8–64, float16/32/64)`,
      at,
    );
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const end = dataOffset + count * itemSize;
  if (end > bytes.length) {
    throw new DataError(
      `truncated NPY data: shape (${shape}) of ${dtype} needs ${count * itemSize} bytes after the header, ` +
        `the file has ${bytes.length - dataOffset}; the file is incomplete, save or copy it again`,
      { file, offset: bytes.length },
    );
  }
  const little = order !== ">";
  const data = decode(dtype, dv, dataOffset, count, little, file, at);
  return { dtype, shape, data, dataOffset };
}

function decode(
  dtype: string,
  dv: DataView,
  off: number,
  n: number,
  little: boolean,
  file: string,
  at: { file: string; offset: number },
): NpyArray["data"] {
  switch (dtype) {
    case "b1":
    case "u1":
      return new Uint8Array(dv.buffer.slice(dv.byteOffset + off, dv.byteOffset + off + n));
    case "i1":
      return new Int8Array(dv.buffer.slice(dv.byteOffset + off, dv.byteOffset + off + n));
    case "u2":
      return read(new Uint16Array(n), (i) => dv.getUint16(off + 2 * i, little));
    case "i2":
      return read(new Int16Array(n), (i) => dv.getInt16(off + 2 * i, little));
    case "u4":
      return read(new Uint32Array(n), (i) => dv.getUint32(off + 4 * i, little));
    case "i4":
      return read(new Int32Array(n), (i) => dv.getInt32(off + 4 * i, little));
    case "f2":
      return read(new Float32Array(n), (i) => halfToFloat(dv.getUint16(off + 2 * i, little)));
    case "f4":
      return read(new Float32Array(n), (i) => dv.getFloat32(off + 4 * i, little));
    case "f8":
      return read(new Float64Array(n), (i) => dv.getFloat64(off + 8 * i, little));
    case "i8":
    case "u8": {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = dtype === "i8" ? dv.getBigInt64(off + 8 * i, little) : dv.getBigUint64(off + 8 * i, little);
        if (v > 9007199254740991n || v < -9007199254740991n) {
          throw new DataError(`64-bit value ${v} does not fit a double exactly`, {
            file,
            offset: off + 8 * i,
          });
        }
        out[i] = Number(v);
      }
      return out;
    }
    default:
      throw new DataError(
        `dtype ${dtype} is not supported; save numeric arrays (bool, int8–64, uint8–64, float16/32/64)`,
        at,
      );
  }
}

function read<T extends { length: number; [i: number]: number }>(out: T, get: (i: number) => number): T {
  for (let i = 0; i < out.length; i++) out[i] = get(i);
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

export interface ArraysOptions {
  name?: string;
  /** Layout of 4-D image arrays: "nchw", "nhwc", or "auto" (default: NHWC when the last axis is 1, 3 or 4 and the
   * second is not). */
  layout?: "nchw" | "nhwc" | "auto";
  numClasses?: number;
  classNames?: readonly string[];
}

/**
 * Build a dataset from x (N×F, N×H×W, or N×C×H×W / N×H×W×C) and y (N, N×1, or one-hot N×K). uint8 samples stay
 * uint8 in memory; other types become float32.
 */
export function arraysToDataset(
  x: NpyArray,
  y: NpyArray,
  files: { x: string; y: string },
  opts: ArraysOptions = {},
): ArrayDataset {
  const n = x.shape[0];
  if (x.shape.length < 2 || x.shape.length > 4 || n === undefined) {
    throw new DataError(
      `x has shape (${x.shape}); expected (N, features), (N, H, W), (N, C, H, W) or (N, H, W, C)`,
      { file: files.x },
    );
  }
  let inputShape: number[];
  let data: SampleStore =
    x.dtype === "u1" || x.dtype === "b1" || x.data instanceof Float32Array
      ? x.data
      : Float32Array.from(x.data);
  if (x.shape.length === 2) inputShape = [x.shape[1]!];
  else if (x.shape.length === 3) inputShape = [1, x.shape[1]!, x.shape[2]!];
  else {
    const [, a, b, c] = x.shape as [number, number, number, number];
    const chans = (d: number) => d === 1 || d === 3 || d === 4;
    const nhwc = opts.layout === "nhwc" || ((opts.layout ?? "auto") === "auto" && chans(c) && !chans(a));
    if (nhwc) {
      inputShape = [c, a, b];
      data = toChw(data, n, a, b, c);
    } else inputShape = [a, b, c];
  }

  const labels = yToLabels(y, n, files.y);
  const numClasses = opts.numClasses ?? opts.classNames?.length ?? maxPlusOne(labels);
  const itemBytes = Number(y.dtype.slice(1));
  checkLabels(labels, numClasses, (i) => ({ file: files.y, offset: y.dataOffset + i * itemBytes, item: i }));
  return new ArrayDataset({
    name: opts.name ?? files.x,
    inputShape,
    numClasses,
    data,
    labels,
    ...(opts.classNames ? { classNames: opts.classNames } : {}),
  });
}

function toChw(src: SampleStore, n: number, h: number, w: number, c: number): SampleStore {
  const out = new (src.constructor as new (len: number) => SampleStore)(src.length);
  const size = h * w * c;
  for (let i = 0; i < n; i++) {
    const base = i * size;
    for (let p = 0; p < h * w; p++)
      for (let ch = 0; ch < c; ch++) out[base + ch * h * w + p] = src[base + p * c + ch]!;
  }
  return out;
}

function yToLabels(y: NpyArray, n: number, file: string): Int32Array {
  if (y.shape[0] !== n) {
    throw new DataError(`y has ${y.shape[0]} items but x has ${n}; x and y must describe the same items`, {
      file,
    });
  }
  const k = y.shape.length === 2 ? y.shape[1]! : 1;
  if (y.shape.length > 2 || k < 1) {
    throw new DataError(`y has shape (${y.shape}); expected (N), (N, 1) or one-hot (N, classes)`, { file });
  }
  const labels = new Int32Array(n);
  const itemBytes = Number(y.dtype.slice(1));
  for (let i = 0; i < n; i++) {
    if (k === 1) {
      const v = y.data[i]!;
      if (!Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) {
        throw new DataError(`label ${v} is not a class index (a whole number)`, {
          file,
          offset: y.dataOffset + i * itemBytes,
          item: i,
        });
      }
      labels[i] = v;
    } else {
      let hot = -1;
      for (let j = 0; j < k; j++) {
        const v = y.data[i * k + j]!;
        if (v === 1 && hot < 0) hot = j;
        else if (v !== 0) hot = -2;
      }
      if (hot < 0) {
        throw new DataError(`row ${i} of the one-hot labels is not one 1 among 0s`, {
          file,
          offset: y.dataOffset + i * k * itemBytes,
          item: i,
        });
      }
      labels[i] = hot;
    }
  }
  return labels;
}

function maxPlusOne(labels: Int32Array): number {
  let m = -1;
  for (const v of labels) if (v > m) m = v;
  return Math.max(m + 1, 1);
}

export interface NpyPairOptions extends ArraysOptions {
  x: string;
  y: string;
}

/** A dataset from two NPY files, samples and labels. */
export function readNpyPair(opts: NpyPairOptions): ArrayDataset {
  const x = parseNpy(readInput(opts.x, "NPY file"), opts.x);
  const y = parseNpy(readInput(opts.y, "NPY file"), opts.y);
  return arraysToDataset(x, y, { x: opts.x, y: opts.y }, opts);
}
