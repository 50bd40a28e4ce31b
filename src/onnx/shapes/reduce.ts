import { REDUCE } from "../op-families.js";
import type { RuleCtx, ShapeRule } from "./context.js";
import { fmt, normAxis } from "./dims.js";

/** Reduce*: axes from the input (ReduceSum 13+, all 18+) or the attribute; keepdims; noop_with_empty_axes. */
const reduce: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  const keep = c.int("keepdims", 1) === 1;
  let axes: number[] | undefined;
  if (c.has(1)) {
    axes = c.numbers(1);
    if (!axes) return [{ dtype, shape: x && keep ? x.map(() => null) : undefined }];
  } else axes = c.ints("axes") ?? [];
  if (!x) return [{ dtype }];
  if (axes.length === 0 && c.int("noop_with_empty_axes", 0) === 1) return [{ dtype, shape: x }];
  const all = axes.length === 0;
  const at = axes.map((a) => {
    const n = normAxis(a, x.length);
    if (n === undefined) c.fail(`axes [${axes}] out of range for input ${fmt(x)}`);
    return n;
  });
  const shape = x.flatMap((d, i) => (all || at.includes(i) ? (keep ? [1] : []) : [d]));
  return [{ dtype, shape }];
};

/** ArgMax / ArgMin: one axis reduced (kept as 1 with keepdims), int64 indices. */
const argReduce: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: "int64" }];
  const axis = c.int("axis", 0);
  const a = normAxis(axis, x.length);
  if (a === undefined) c.fail(`axis ${axis} is out of range for input ${fmt(x)}`);
  const keep = c.int("keepdims", 1) === 1;
  return [{ dtype: "int64", shape: x.flatMap((d, i) => (i === a ? (keep ? [1] : []) : [d])) }];
};

export const reduceRules: Record<string, ShapeRule> = {
  ...Object.fromEntries(REDUCE.map((op) => [op, reduce])),
  ArgMax: argReduce,
  ArgMin: argReduce,
};
