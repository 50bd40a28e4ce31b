import type { DType } from "../dtype.js";
import { dtypeFromCode } from "../dtype.js";
import type { Dim } from "../ir.js";
import { ELEMENTWISE_UNARY, PER_SAMPLE_NORMALIZATION } from "../op-families.js";
import { BroadcastError, broadcastAll } from "./broadcast.js";
import type { Known, RuleCtx, ShapeRule } from "./context.js";
import { MAX_TRACKED } from "./context.js";
import { fmt } from "./dims.js";

/** Ops whose output has the shape and type of their first input. */
const UNARY = [
  ...ELEMENTWISE_UNARY,
  ...PER_SAMPLE_NORMALIZATION,
  "Gelu",
  "Mish",
  "Shrink",
  "BitwiseNot",
  "Clip",
  "LpNormalization",
  "MeanVarianceNormalization",
];

const same: ShapeRule = (c: RuleCtx) => [{ dtype: c.dtype(0), shape: c.shape(0) }];

/** Identity keeps tracked values (shape arithmetic passes through it). */
const identity: ShapeRule = (c: RuleCtx) => [c.input(0)];

/** Dropout: the output as the input; the mask is bool (opset 10+) or of the input's type (before). */
const dropout: ShapeRule = (c: RuleCtx) => [
  { dtype: c.dtype(0), shape: c.shape(0) },
  { dtype: c.opset >= 10 ? "bool" : c.dtype(0), shape: c.shape(0) },
];

/** Cast: `to` is a TensorProto code (a type name string in opset 1). Integer values stay tracked. */
const cast: ShapeRule = (c: RuleCtx) => {
  const to = c.node.attrs.to;
  let dtype: DType | undefined;
  if (to?.type === "int") dtype = dtypeFromCode(to.value);
  else if (to?.type === "string") dtype = LEGACY_TYPE_NAMES[to.value.toUpperCase()];
  if (!dtype)
    c.fail(
      `attribute 'to' (${to ? JSON.stringify((to as { value?: unknown }).value) : "missing"}) is not a known type`,
    );
  const v = c.value(0);
  const keep =
    v && (dtype === "int64" || dtype === "int32")
      ? v.map((d) => (typeof d === "number" ? Math.trunc(d) : d))
      : undefined;
  return [{ dtype, shape: c.shape(0), value: keep }];
};

/** Opset 1 names the target of Cast by string. */
export const LEGACY_TYPE_NAMES: Record<string, DType> = {
  FLOAT: "float32",
  UINT8: "uint8",
  INT8: "int8",
  UINT16: "uint16",
  INT16: "int16",
  INT32: "int32",
  INT64: "int64",
  STRING: "string",
  BOOL: "bool",
  FLOAT16: "float16",
  DOUBLE: "float64",
  UINT32: "uint32",
  UINT64: "uint64",
  COMPLEX64: "complex64",
  COMPLEX128: "complex128",
  BFLOAT16: "bfloat16",
};

const COMPARISONS = new Set([
  "Equal",
  "Greater",
  "Less",
  "GreaterOrEqual",
  "LessOrEqual",
  "And",
  "Or",
  "Xor",
]);

/** Broadcast shapes of the given inputs, reporting a mismatch against the node. */
export function broadcastInputs(c: RuleCtx, inputs: number[]): Dim[] | undefined {
  try {
    return broadcastAll(inputs.map((i) => c.shape(i)));
  } catch (e) {
    if (e instanceof BroadcastError) {
      c.fail(`inputs ${inputs.map((i) => fmt(c.shape(i))).join(" and ")} do not broadcast: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Elementwise binary and variadic ops with numpy broadcasting. Before opset 7 the arithmetic and comparison ops
 * broadcast only with `broadcast=1` (B to A, aligned at `axis`), and the output has A's shape.
 */
function binary(op: string): ShapeRule {
  return (c: RuleCtx) => {
    const dtype = COMPARISONS.has(op) ? "bool" : c.dtype(0);
    const inputs = c.node.inputs.map((_, i) => i).filter((i) => c.has(i));
    let shape: Dim[] | undefined;
    if (c.opset < 7 && LEGACY_BROADCAST.has(op)) shape = legacyBroadcast(c);
    else shape = broadcastInputs(c, inputs);
    const out: Known = { dtype, shape };
    if (ARITH[op] && inputs.length === 2) out.value = arith(c, ARITH[op]!, shape);
    return [out];
  };
}

const LEGACY_BROADCAST = new Set([
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Pow",
  "Equal",
  "Greater",
  "Less",
  "And",
  "Or",
  "Xor",
]);

function legacyBroadcast(c: RuleCtx): Dim[] | undefined {
  const a = c.shape(0);
  const b = c.shape(1);
  if (!a || !b) return a;
  if (c.int("broadcast", 0) === 0) {
    if (
      a.length !== b.length ||
      a.some((d, i) => typeof d === "number" && typeof b[i] === "number" && d !== b[i])
    ) {
      c.fail(`inputs ${fmt(a)} and ${fmt(b)} differ and broadcast=0`);
    }
    return a;
  }
  const axis = c.node.attrs.axis ? c.int("axis", 0) : a.length - b.length;
  const start = axis < 0 ? axis + a.length : axis;
  const fits =
    start >= 0 &&
    start + b.length <= a.length &&
    b.every(
      (d, i) =>
        d === 1 ||
        d === null ||
        a[start + i] === null ||
        d === a[start + i] ||
        typeof d !== typeof a[start + i],
    );
  if (!fits) c.fail(`input ${fmt(b)} does not broadcast to ${fmt(a)} at axis ${axis}`);
  return a;
}

type Arith = (x: number, y: number) => number;
const ARITH: Record<string, Arith | undefined> = {
  Add: (x, y) => x + y,
  Sub: (x, y) => x - y,
  Mul: (x, y) => x * y,
  Div: (x, y) => x / y,
};

/** Shape arithmetic on tracked integer values (Shape→Mul, Shape→Div, …); symbols survive +0, -0, ·1 and /1. */
function arith(c: RuleCtx, f: Arith, shape: Dim[] | undefined): Dim[] | undefined {
  const a = c.value(0);
  const b = c.value(1);
  const dtype = c.dtype(0);
  if (!a || !b || !shape || (dtype !== "int64" && dtype !== "int32")) return undefined;
  const n = shape.reduce<number>((p, d) => p * (typeof d === "number" ? d : Number.NaN), 1);
  if (!(n <= MAX_TRACKED) || (a.length !== 1 && a.length !== n) || (b.length !== 1 && b.length !== n))
    return undefined;
  const op = c.node.opType;
  return Array.from({ length: n }, (_, i) => {
    const x = a[a.length === 1 ? 0 : i]!;
    const y = b[b.length === 1 ? 0 : i]!;
    if (typeof x === "number" && typeof y === "number") {
      const r = f(x, y);
      return op === "Div" ? Math.trunc(r) : r;
    }
    if ((op === "Add" || op === "Sub") && y === 0) return x;
    if (op === "Add" && x === 0) return y;
    if ((op === "Mul" || op === "Div") && y === 1) return x;
    if (op === "Mul" && x === 1) return y;
    return null;
  });
}

/** Where(cond, x, y): three-way broadcasting, x's type. */
const where: ShapeRule = (c: RuleCtx) => [
  { dtype: c.dtype(1) ?? c.dtype(2), shape: broadcastInputs(c, [0, 1, 2]) },
];

/** PRelu: slope broadcasts to X (unidirectionally); the output is X's shape. */
const prelu: ShapeRule = (c: RuleCtx) => {
  broadcastInputs(c, [0, 1]);
  return same(c);
};

export const elementwiseRules: Record<string, ShapeRule> = {
  ...Object.fromEntries(UNARY.map((op) => [op, same])),
  Identity: identity,
  Dropout: dropout,
  Cast: cast,
  Where: where,
  PRelu: prelu,
  ...Object.fromEntries(
    ["Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "BitShift", ...COMPARISONS].map(
      (op) => [op, binary(op)],
    ),
  ),
};
