import type { RuleCtx, ShapeRule } from "./context.js";
import { fmt, normAxis, unify } from "./dims.js";

/**
 * BatchNormalization: Y has X's shape. Scale, B, mean and var are [C] (or [C,D…] with spatial=0 before opset 9).
 * The extra outputs (running mean/var with training_mode, and before opset 14 also saved mean/var) are [C].
 */
const batchNorm: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const ch = x && x.length >= 2 ? x[1]! : null;
  const spatial = c.opset < 9 ? c.int("spatial", 1) : 1;
  for (const [i, name] of [
    [1, "scale"],
    [2, "B"],
    [3, "mean"],
    [4, "var"],
  ] as const) {
    const s = c.shape(i);
    if (!s || !x) continue;
    const ok =
      spatial === 1
        ? s.length === 1 && unify(s[0]!, ch) !== undefined
        : s.length >= 1 && unify(s[0]!, ch) !== undefined;
    if (!ok) c.fail(`${name} ${fmt(s)} does not match the ${ch} channels of input ${fmt(x)}`);
  }
  if (x && x.length < 2) c.fail(`input ${fmt(x)} needs a channel dim`);
  const stat = { dtype: c.dtype(3) ?? c.dtype(0), shape: c.shape(3) ?? (ch === null ? undefined : [ch]) };
  return [{ dtype: c.dtype(0), shape: x }, stat, stat, stat, stat];
};

/** Softmax / LogSoftmax / Hardmax: the input's shape; the axis must be in range. */
const softmax: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const axis = c.int("axis", c.opset >= 13 ? -1 : 1);
  if (x && normAxis(axis, x.length) === undefined && !(x.length === 0 && (axis === 0 || axis === -1))) {
    c.fail(`axis ${axis} is out of range for input ${fmt(x)}`);
  }
  return [{ dtype: c.dtype(0), shape: x }];
};

/** LayerNormalization: Y as X; Mean and InvStdDev keep the leading dims and are 1 from `axis` on. */
const layerNorm: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const axis = c.int("axis", -1);
  const a = x ? normAxis(axis, x.length) : undefined;
  if (x && a === undefined) c.fail(`axis ${axis} is out of range for input ${fmt(x)}`);
  const stat = {
    dtype: c.int("stash_type", 1) === 1 ? ("float32" as const) : c.dtype(0),
    shape: x?.map((d, i) => (i < a! ? d : 1)),
  };
  return [{ dtype: c.dtype(0), shape: x }, stat, stat];
};

export const normRules: Record<string, ShapeRule> = {
  BatchNormalization: batchNorm,
  Softmax: softmax,
  LogSoftmax: softmax,
  Hardmax: softmax,
  LayerNormalization: layerNorm,
};
