import type { Dim } from "../ir.js";
import type { Known, RuleCtx, ShapeRule } from "./context.js";
import { describe } from "./context.js";
import { fmt, normAxis, unify } from "./dims.js";

/** Gather: data[:axis] + indices.shape + data[axis+1:]; gathers from tracked 0-D/1-D values with known indices. */
const gather: ShapeRule = (c: RuleCtx) => {
  const data = c.shape(0);
  const idx = c.shape(1);
  const dtype = c.dtype(0);
  if (!data || !idx) return [{ dtype }];
  const axis = c.int("axis", 0);
  const a = normAxis(axis, data.length);
  if (a === undefined) c.fail(`axis ${axis} is out of range for data ${fmt(data)}`);
  const out: Known = { dtype, shape: [...data.slice(0, a), ...idx, ...data.slice(a + 1)] };
  const v = c.value(0);
  const ix = c.numbers(1);
  if (ix && typeof data[a] === "number") {
    const n = data[a] as number;
    const bad = ix.find((i) => i < -n || i >= n);
    if (bad !== undefined) c.fail(`index ${bad} is out of range for dim ${a} (${n}) of data ${fmt(data)}`);
    if (v && data.length === 1) out.value = ix.map((i) => v[i < 0 ? i + n : i]!);
  }
  return [out];
};

/** GatherElements: the output has the indices' shape; ranks must agree. */
const gatherElements: ShapeRule = (c: RuleCtx) => {
  const data = c.shape(0);
  const idx = c.shape(1);
  if (data && idx && data.length !== idx.length)
    c.fail(`data and indices ranks differ (${describe(c, ["data", "indices"])})`);
  if (data) {
    const axis = c.int("axis", 0);
    if (normAxis(axis, data.length) === undefined)
      c.fail(`axis ${axis} is out of range for data ${fmt(data)}`);
  }
  return [{ dtype: c.dtype(0), shape: idx }];
};

/** ScatterElements: the output has the data's shape; indices and updates must have the same shape. */
const scatterElements: ShapeRule = (c: RuleCtx) => {
  const data = c.shape(0);
  const idx = c.shape(1);
  const upd = c.shape(2);
  if (idx && upd && (idx.length !== upd.length || idx.some((d, i) => unify(d, upd[i]!) === undefined))) {
    c.fail(`indices and updates differ in shape (${describe(c, ["data", "indices", "updates"])})`);
  }
  if (data && idx && data.length !== idx.length)
    c.fail(`data and indices ranks differ (${describe(c, ["data", "indices"])})`);
  return [{ dtype: c.dtype(0), shape: data }];
};

/** SoftmaxCrossEntropyLoss: scores [N,C,D…], labels [N,D…]; loss [] or [N,D…] (reduction none); log_prob as scores. */
const softmaxCrossEntropy: ShapeRule = (c: RuleCtx) => {
  const s = c.shape(0);
  const l = c.shape(1);
  const reduction = c.string("reduction", "mean");
  if (!["mean", "sum", "none"].includes(reduction)) c.fail(`unknown reduction '${reduction}'`);
  if (s && s.length < 2) c.fail(`scores ${fmt(s)} need at least [N,C]`);
  if (s && l) {
    const want: Dim[] = [s[0]!, ...s.slice(2)];
    if (l.length !== want.length || l.some((d, i) => unify(d, want[i]!) === undefined)) {
      c.fail(`labels ${fmt(l)} do not match scores ${fmt(s)} (labels must be ${fmt(want)})`);
    }
  }
  const w = c.shape(2);
  if (w && s && (w.length !== 1 || unify(w[0]!, s[1]!) === undefined))
    c.fail(`weights ${fmt(w)} do not match the ${s[1]} classes`);
  const perItem = s ? [s[0]!, ...s.slice(2)] : undefined;
  return [
    { dtype: c.dtype(0), shape: reduction === "none" ? perItem : [] },
    { dtype: c.dtype(0), shape: s },
  ];
};

export const indexingRules: Record<string, ShapeRule> = {
  Gather: gather,
  GatherElements: gatherElements,
  ScatterElements: scatterElements,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropy,
};
