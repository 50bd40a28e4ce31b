/**
 * Constant folding: Constant nodes become initializers, and nodes whose inputs are all constants are evaluated in
 * JS and replaced by initializers holding their outputs, under the same names. Only ops that JS evaluates exactly
 * as onnxruntime does are folded: data movement (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Gather,
 * Slice, Identity), Shape and Size of statically known shapes, Cast, integer arithmetic (int64 through BigInt)
 * and float arithmetic that rounds once (Add/Sub/Mul/Div/Neg), ConstantOfShape and integer Range.
 */
import {
  type DType,
  dtypeFromCode,
  floatToHalf,
  halfToFloat,
  isFloat,
  STORAGE,
  type TensorData,
} from "./dtype.js";
import { OnnxError } from "./errors.js";
import { type Graph, type Node, topologicalOrder } from "./ir.js";
import { constantValue, inferShapes, type Known } from "./shapes/index.js";
import { numel, type Tensor } from "./tensor.js";

export interface FoldOptions {
  /** The graph's ai.onnx opset (for the forms of Squeeze, Slice, …). Default: the working opset. */
  opset?: number;
  /** Do not create folded tensors with more elements than this (default 1<<24). */
  maxElements?: number;
}

type Evaluator = (n: Node, inputs: (Tensor | undefined)[], out: Known[]) => Tensor[] | undefined;

/** Fold in place; returns how many nodes were replaced by initializers. */
export function foldConstants(g: Graph, opts: FoldOptions = {}): number {
  const max = opts.maxElements ?? 1 << 24;
  const known = inferShapes(g, { opset: opts.opset });
  const overridable = new Set(g.inputs.map((v) => v.name));
  const graphOutputs = new Set(g.outputs.map((v) => v.name));
  const constant = (name: string) => (name && !overridable.has(name) ? g.initializers.get(name) : undefined);
  const kept: Node[] = [];
  const orphanCandidates = new Set<string>();
  let folded = 0;
  for (const n of topologicalOrder(g)) {
    const ev = n.domain === "" || n.domain === "ai.onnx" ? EVALUATORS[n.opType] : undefined;
    const inputs = n.inputs.map((i) => (i ? constant(i) : undefined));
    const ready = STATIC_SHAPE_OPS.has(n.opType) || n.inputs.every((i, k) => !i || inputs[k]);
    const outKnown = n.outputs.map((o) => known.get(o) ?? {});
    let result: Tensor[] | undefined;
    if (ev && ready && !n.outputs.some((o) => graphOutputs.has(o))) {
      try {
        result = ev(n, inputs, outKnown);
      } catch (e) {
        if (e instanceof OnnxError) throw e;
        throw new OnnxError(`${n.opType}: cannot evaluate on its constant inputs (${(e as Error).message})`, {
          node: n.name,
        });
      }
    }
    if (!result || result.some((t) => numel(t.dims) > max)) {
      kept.push(n);
      continue;
    }
    n.outputs.forEach((o, k) => {
      if (o) g.initializers.set(o, result[k]!);
      g.valueInfo.delete(o);
    });
    for (const i of n.inputs) if (i && g.initializers.has(i)) orphanCandidates.add(i);
    folded++;
  }
  g.nodes = kept;
  // initializers only the folded nodes read are dropped
  const read = new Set<string>([...g.outputs.map((v) => v.name)]);
  for (const n of g.nodes) for (const i of n.inputs) read.add(i);
  for (const name of orphanCandidates)
    if (!read.has(name) && !overridable.has(name)) g.initializers.delete(name);
  g.invalidate();
  return folded;
}

/** Ops folded from their inputs' shapes alone. */
const STATIC_SHAPE_OPS = new Set(["Shape", "Size"]);

const staticDims = (k: Known): number[] | undefined =>
  k.shape?.every((d) => typeof d === "number") ? (k.shape as number[]) : undefined;

/** Same data, new dims: the output's inferred (static) shape. */
const relabel: Evaluator = (_n, [x], [out]) => {
  const dims = staticDims(out!);
  return x && dims ? [{ dtype: x.dtype, dims, data: x.data }] : undefined;
};

const strides = (dims: number[]) => {
  const s = Array(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1]!;
  return s as number[];
};

function alloc(dtype: DType, n: number): TensorData {
  if (dtype === "string") return new Array<Uint8Array>(n);
  const { ctor, slots } = STORAGE[dtype];
  return new ctor(n * slots);
}

/** A tensor whose element i is element src(i) of x (data movement only: exact for every type). */
function take(x: Tensor, dims: number[], src: (i: number) => number): Tensor {
  const n = numel(dims);
  const data = alloc(x.dtype, n) as unknown as unknown[];
  const from = x.data as unknown as ArrayLike<unknown>;
  const slots = x.dtype === "complex64" || x.dtype === "complex128" ? 2 : 1;
  for (let i = 0; i < n; i++) {
    const j = src(i);
    for (let s = 0; s < slots; s++) data[i * slots + s] = from[j * slots + s];
  }
  return { dtype: x.dtype, dims, data: data as unknown as TensorData };
}

const transpose: Evaluator = (n, [x]) => {
  if (!x) return undefined;
  const perm =
    n.attrs.perm?.type === "ints" ? n.attrs.perm.value : x.dims.map((_, i) => x.dims.length - 1 - i);
  const dims = perm.map((p) => x.dims[p]!);
  const inS = strides(x.dims);
  const outS = strides(dims);
  return [
    take(x, dims, (i) => {
      let j = 0;
      for (let a = 0; a < dims.length; a++) j += (Math.floor(i / outS[a]!) % dims[a]!) * inS[perm[a]!]!;
      return j;
    }),
  ];
};

const concat: Evaluator = (n, inputs, [out]) => {
  const xs = inputs.filter((t): t is Tensor => !!t);
  const dims = staticDims(out!);
  if (!dims || xs.length === 0) return undefined;
  const rank = dims.length;
  const ax = n.attrs.axis?.type === "int" ? n.attrs.axis.value : 1;
  const a = ax < 0 ? ax + rank : ax;
  const outer = numel(dims.slice(0, a));
  const pieces = xs.map((t) => numel(t.dims.slice(a)));
  const row = pieces.reduce((p, q) => p + q, 0);
  // element i: row r = floor(i / row), offset within the row picks the input
  const starts = pieces.map((_, k) => pieces.slice(0, k).reduce((p, q) => p + q, 0));
  const n2 = numel(dims);
  const data = alloc(xs[0]!.dtype, n2) as unknown as unknown[];
  for (let r = 0; r < outer; r++) {
    xs.forEach((t, k) => {
      const src = t.data as unknown as ArrayLike<unknown>;
      for (let e = 0; e < pieces[k]!; e++) data[r * row + starts[k]! + e] = src[r * pieces[k]! + e];
    });
  }
  return [{ dtype: xs[0]!.dtype, dims, data: data as unknown as TensorData }];
};

const gather: Evaluator = (n, [x, idx]) => {
  if (!x || !idx) return undefined;
  const ax = n.attrs.axis?.type === "int" ? n.attrs.axis.value : 0;
  const a = ax < 0 ? ax + x.dims.length : ax;
  const d = x.dims[a]!;
  const ix = Array.from(idx.data as ArrayLike<number | bigint>, (v) => {
    const k = Number(v);
    if (k < -d || k >= d)
      throw new OnnxError(`Gather: index ${k} is out of range for dim ${a} (${d})`, { node: n.name });
    return k < 0 ? k + d : k;
  });
  const inner = numel(x.dims.slice(a + 1));
  const dims = [...x.dims.slice(0, a), ...idx.dims, ...x.dims.slice(a + 1)];
  const per = ix.length * inner;
  return [
    take(
      x,
      dims,
      (i) => Math.floor(i / per) * d * inner + ix[Math.floor((i % per) / inner)]! * inner + (i % inner),
    ),
  ];
};

const slice: Evaluator = (_n, inputs, [out]) => {
  const x = inputs[0];
  const dims = staticDims(out!);
  if (!x || !dims) return undefined;
  const nums = (k: number) =>
    inputs[k] ? Array.from(inputs[k]!.data as ArrayLike<number | bigint>, Number) : undefined;
  const starts = nums(1)!;
  const axes = (nums(3) ?? starts.map((_, i) => i)).map((a) => (a < 0 ? a + x.dims.length : a));
  const steps = nums(4) ?? starts.map(() => 1);
  const first = x.dims.map(() => 0);
  const step = x.dims.map(() => 1);
  axes.forEach((a, k) => {
    const d = x.dims[a]!;
    let s = starts[k]! < 0 ? starts[k]! + d : starts[k]!;
    s = steps[k]! > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
    first[a] = s;
    step[a] = steps[k]!;
  });
  const inS = strides(x.dims);
  const outS = strides(dims);
  return [
    take(x, dims, (i) => {
      let j = 0;
      for (let a = 0; a < dims.length; a++)
        j += (first[a]! + (Math.floor(i / outS[a]!) % dims[a]!) * step[a]!) * inS[a]!;
      return j;
    }),
  ];
};

/** Element i of a tensor as a number or bigint (float16/bfloat16 widened). */
function reader(t: Tensor): (i: number) => number | bigint {
  const d = t.data as unknown as ArrayLike<number | bigint>;
  if (t.dtype === "float16") return (i) => halfToFloat(d[i] as number);
  if (t.dtype === "bfloat16") {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    return (i) => {
      u[0] = (d[i] as number) << 16;
      return f[0]!;
    };
  }
  return (i) => d[i]!;
}

/** Convert one value to the storage of dtype `to`, as a C static_cast would; undefined when that is not defined. */
function convert(v: number | bigint, to: DType): number | bigint | undefined {
  if (to === "bool") return v !== 0 && v !== 0n && !Number.isNaN(v) ? 1 : 0;
  if (isFloat(to) || to === "float64") {
    const x = Number(v);
    return to === "float16" ? floatToHalf(x) : to === "bfloat16" ? undefined : x;
  }
  const bits = Number(/\d+/.exec(to)?.[0]);
  const unsigned = to.startsWith("u");
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else {
    if (!Number.isFinite(v)) return undefined;
    const t = Math.trunc(v);
    b = BigInt(t);
    const lo = unsigned ? 0n : -(1n << BigInt(bits - 1));
    const hi = unsigned ? (1n << BigInt(bits)) - 1n : (1n << BigInt(bits - 1)) - 1n;
    if (b < lo || b > hi) return undefined; // out of range float → int is undefined behaviour
  }
  const w = unsigned ? BigInt.asUintN(bits, b) : BigInt.asIntN(bits, b);
  return bits === 64 ? w : Number(w);
}

/** The types a folded Cast may produce. */
const CAST_TARGETS = new Set<DType>([
  "float32",
  "uint8",
  "int8",
  "uint16",
  "int16",
  "int32",
  "int64",
  "bool",
  "float16",
  "float64",
  "uint32",
  "uint64",
]);

const cast: Evaluator = (n, [x]) => {
  const to = n.attrs.to?.type === "int" ? dtypeFromCode(n.attrs.to.value) : undefined;
  if (
    !x ||
    !to ||
    !CAST_TARGETS.has(to) ||
    x.dtype === "string" ||
    x.dtype.startsWith("complex") ||
    x.dtype.startsWith("float8")
  )
    return undefined;
  const read = reader(x);
  const count = numel(x.dims);
  const data = alloc(to, count) as unknown as (number | bigint)[];
  for (let i = 0; i < count; i++) {
    const v = convert(read(i), to);
    if (v === undefined) return undefined;
    data[i] = v;
  }
  return [{ dtype: to, dims: [...x.dims], data: data as unknown as TensorData }];
};

type Op2 = { int: (a: bigint, b: bigint) => bigint | undefined; float: (a: number, b: number) => number };
const OPS2: Record<string, Op2> = {
  Add: { int: (a, b) => a + b, float: (a, b) => a + b },
  Sub: { int: (a, b) => a - b, float: (a, b) => a - b },
  Mul: { int: (a, b) => a * b, float: (a, b) => a * b },
  Div: { int: (a, b) => (b === 0n ? undefined : a / b), float: (a, b) => a / b },
};

/** Elementwise binary arithmetic with broadcasting, exact for integers (wrapping) and float32/float64. */
const arith: Evaluator = (n, [a, b], [out]) => {
  const dims = staticDims(out!);
  const op = OPS2[n.opType]!;
  if (!a || !b || !dims || a.dtype !== b.dtype) return undefined;
  const t = a.dtype;
  const int = /^u?int(8|16|32|64)$/.test(t);
  if (!int && t !== "float32" && t !== "float64") return undefined;
  const count = numel(dims);
  const data = alloc(t, count) as unknown as (number | bigint)[];
  const ia = broadcastIndex(a.dims, dims);
  const ib = broadcastIndex(b.dims, dims);
  const ra = a.data as unknown as ArrayLike<number | bigint>;
  const rb = b.data as unknown as ArrayLike<number | bigint>;
  for (let i = 0; i < count; i++) {
    if (int) {
      const r = op.int(BigInt(ra[ia(i)]!), BigInt(rb[ib(i)]!));
      if (r === undefined) return undefined;
      const v = convert(r, t);
      data[i] = v!;
    } else data[i] = op.float(ra[ia(i)] as number, rb[ib(i)] as number);
  }
  return [{ dtype: t, dims, data: data as unknown as TensorData }];
};

/** Index into a tensor of dims `from` for output element i of a broadcast to `to`. */
function broadcastIndex(from: number[], to: number[]): (i: number) => number {
  const off = to.length - from.length;
  const inS = strides(from);
  const outS = strides(to);
  return (i) => {
    let j = 0;
    for (let a = 0; a < from.length; a++) {
      if (from[a] === 1) continue;
      j += (Math.floor(i / outS[a + off]!) % to[a + off]!) * inS[a]!;
    }
    return j;
  };
}

const neg: Evaluator = (_n, [x]) => {
  if (!x || !(x.dtype === "float32" || x.dtype === "float64" || /^int(8|16|32|64)$/.test(x.dtype)))
    return undefined;
  const data = alloc(x.dtype, numel(x.dims)) as unknown as (number | bigint)[];
  const src = x.data as unknown as ArrayLike<number | bigint>;
  for (let i = 0; i < data.length; i++)
    data[i] = convert(typeof src[i] === "bigint" ? -(src[i] as bigint) : -(src[i] as number), x.dtype)!;
  return [{ dtype: x.dtype, dims: [...x.dims], data: data as unknown as TensorData }];
};

const shape: Evaluator = (n, _inputs, [out]) => {
  const v = out!.value;
  if (!v?.every((d) => typeof d === "number")) return undefined;
  return [
    {
      dtype: "int64",
      dims: n.opType === "Size" ? [] : [v.length],
      data: BigInt64Array.from(v as number[], BigInt),
    },
  ];
};

const constantOfShape: Evaluator = (n, [s]) => {
  if (!s) return undefined;
  const dims = Array.from(s.data as BigInt64Array, Number);
  const v =
    n.attrs.value?.type === "tensor"
      ? n.attrs.value.value
      : { dtype: "float32" as DType, dims: [1], data: new Float32Array(1) };
  if (v.dtype === "string") return undefined;
  const data = alloc(v.dtype, numel(dims)) as unknown as unknown[];
  const x = (v.data as unknown as ArrayLike<unknown>)[0];
  for (let i = 0; i < data.length; i++) data[i] = x;
  return [{ dtype: v.dtype, dims, data: data as unknown as TensorData }];
};

const range: Evaluator = (_n, [start, limit, delta]) => {
  if (!start || !limit || !delta || !/^int(16|32|64)$/.test(start.dtype)) return undefined;
  const [s, l, d] = [start, limit, delta].map((t) =>
    BigInt((t.data as unknown as ArrayLike<number | bigint>)[0]!),
  );
  if (d === 0n) return undefined;
  const diff = l! - s!;
  let count = diff / d! + (diff % d! !== 0n && diff > 0n === d! > 0n ? 1n : 0n);
  if (count < 0n) count = 0n;
  const data = alloc(start.dtype, Number(count)) as unknown as (number | bigint)[];
  for (let i = 0; i < data.length; i++) data[i] = convert(s! + BigInt(i) * d!, start.dtype)!;
  return [{ dtype: start.dtype, dims: [data.length], data: data as unknown as TensorData }];
};

const constant: Evaluator = (n) => {
  const t = constantValue(n);
  return t ? [t] : undefined;
};

const EVALUATORS: Record<string, Evaluator> = {
  Constant: constant,
  Identity: (_n, [x]) => (x ? [x] : undefined),
  Reshape: relabel,
  Flatten: relabel,
  Squeeze: relabel,
  Unsqueeze: relabel,
  Transpose: transpose,
  Concat: concat,
  Gather: gather,
  Slice: slice,
  Cast: cast,
  Shape: shape,
  Size: shape,
  Add: arith,
  Sub: arith,
  Mul: arith,
  Div: arith,
  Neg: neg,
  ConstantOfShape: constantOfShape,
  Range: range,
};
