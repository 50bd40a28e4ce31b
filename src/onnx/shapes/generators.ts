import type { DType } from "../dtype.js";
import type { Dim } from "../ir.js";
import { numel, type Tensor, toFloat32 } from "../tensor.js";
import type { Known, RuleCtx, ShapeRule } from "./context.js";
import { MAX_TRACKED } from "./context.js";
import { fmt, product } from "./dims.js";

/** What is known of a constant tensor: its type, dims and (when small and numeric) its values. */
export function knownOf(t: Tensor): Known {
  const k: Known = { dtype: t.dtype, shape: [...t.dims] };
  if (t.dtype !== "string" && !t.dtype.startsWith("complex") && numel(t.dims) <= MAX_TRACKED) {
    const d = t.data;
    k.value =
      d instanceof BigInt64Array || d instanceof BigUint64Array
        ? Array.from(d, Number)
        : t.dtype === "float16" || t.dtype === "bfloat16"
          ? Array.from(toFloat32(t))
          : Array.from(d as ArrayLike<number>);
  }
  return k;
}

/** The tensor a Constant node holds (value, or value_float(s)/value_int(s)/value_string(s) from opset 12). */
export function constantValue(node: { attrs: Record<string, import("../ir.js").Attr> }): Tensor | undefined {
  const a = node.attrs;
  if (a.value?.type === "tensor") return a.value.value;
  if (a.value_float?.type === "float")
    return { dtype: "float32", dims: [], data: Float32Array.of(a.value_float.value) };
  if (a.value_floats?.type === "floats") {
    return {
      dtype: "float32",
      dims: [a.value_floats.value.length],
      data: Float32Array.from(a.value_floats.value),
    };
  }
  if (a.value_int?.type === "int")
    return { dtype: "int64", dims: [], data: BigInt64Array.of(BigInt(a.value_int.value)) };
  if (a.value_ints?.type === "ints") {
    return {
      dtype: "int64",
      dims: [a.value_ints.value.length],
      data: BigInt64Array.from(a.value_ints.value, BigInt),
    };
  }
  if (a.value_string?.type === "string")
    return { dtype: "string", dims: [], data: [new TextEncoder().encode(a.value_string.value)] };
  if (a.value_strings?.type === "strings") {
    const enc = new TextEncoder();
    return {
      dtype: "string",
      dims: [a.value_strings.value.length],
      data: a.value_strings.value.map((s) => enc.encode(s)),
    };
  }
  return undefined;
}

const constant: ShapeRule = (c: RuleCtx) => {
  const t = constantValue(c.node);
  if (!t)
    c.fail(
      `has no value attribute this version can read (${Object.keys(c.node.attrs).join(", ") || "none"})`,
    );
  return [knownOf(t)];
};

/** ConstantOfShape: the shape is the input's values; the type is that of `value` (float32 0 by default). */
const constantOfShape: ShapeRule = (c: RuleCtx) => {
  const t = c.tensor("value");
  const dtype: DType = t?.dtype ?? "float32";
  const dims = c.value(0);
  const s = c.shape(0);
  if (s && s.length !== 1) c.fail(`input ${fmt(s)} must be 1-D`);
  if (!dims) return [{ dtype, shape: s && typeof s[0] === "number" ? Array(s[0]).fill(null) : undefined }];
  if (dims.some((d) => typeof d === "number" && d < 0)) c.fail(`shape [${dims}] has a negative dim`);
  const n = product(dims);
  const known: Known = { dtype, shape: dims };
  if (typeof n === "number" && n <= MAX_TRACKED) {
    const v = t ? (knownOf(t).value?.[0] ?? null) : 0;
    known.value = Array(n).fill(v);
  }
  return [known];
};

/** Range: max(ceil((limit - start) / delta), 0) elements of start's type. */
const range: ShapeRule = (c: RuleCtx) => {
  const [start, limit, delta] = [c.numbers(0), c.numbers(1), c.numbers(2)];
  const dtype = c.dtype(0);
  if (!start || !limit || !delta) return [{ dtype, shape: [null] }];
  if (delta[0] === 0) c.fail("delta is 0");
  const n = Math.max(Math.ceil((limit[0]! - start[0]!) / delta[0]!), 0);
  const known: Known = { dtype, shape: [n] };
  if (n <= MAX_TRACKED) known.value = Array.from({ length: n }, (_, i) => start[0]! + i * delta[0]!);
  return [known];
};

/** Shape: the input's dims (start/end from opset 15) as an int64 vector whose values are tracked. */
const shape: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: "int64", shape: [null] }];
  const r = x.length;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
  const start = clamp(c.int("start", 0));
  const end = clamp(c.int("end", r));
  const dims: Dim[] = x.slice(start, Math.max(start, end));
  return [{ dtype: "int64", shape: [dims.length], value: dims }];
};

/** Size: a scalar int64 holding the number of elements. */
const size: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  return [{ dtype: "int64", shape: [], value: x ? [product(x)] : undefined }];
};

export const generatorRules: Record<string, ShapeRule> = {
  Constant: constant,
  ConstantOfShape: constantOfShape,
  Range: range,
  Shape: shape,
  Size: size,
};
