import type { Dim } from "../ir.js";
import { BroadcastError, broadcastShapes, broadcastsTo } from "./broadcast.js";
import type { RuleCtx, ShapeRule } from "./context.js";
import { describe } from "./context.js";
import { fmt, unify } from "./dims.js";

/** Gemm: op(A) [M,K] · op(B) [K,N] (+ C broadcast to [M,N]) → [M,N]. */
const gemm: ShapeRule = (c: RuleCtx) => {
  const a = c.shape(0);
  const b = c.shape(1);
  if (a && a.length !== 2) c.fail(`A ${fmt(a)} must be 2-D`);
  if (b && b.length !== 2) c.fail(`B ${fmt(b)} must be 2-D`);
  const [m, ka] = a ? (c.int("transA", 0) ? [a[1]!, a[0]!] : [a[0]!, a[1]!]) : [null, null];
  const [kb, n] = b ? (c.int("transB", 0) ? [b[1]!, b[0]!] : [b[0]!, b[1]!]) : [null, null];
  if (unify(ka, kb) === undefined) {
    c.fail(
      `inner dims differ: ${ka} vs ${kb} (${describe(c, ["A", "B"])}, transA=${c.int("transA", 0)}, transB=${c.int("transB", 0)})`,
    );
  }
  const shape: Dim[] = [m, n];
  const cs = c.shape(2);
  if (cs && !broadcastsTo(cs, shape)) c.fail(`C ${fmt(cs)} does not broadcast to the product ${fmt(shape)}`);
  return [{ dtype: c.dtype(0), shape: a && b ? shape : undefined }];
};

/** MatMul with numpy semantics: 1-D operands are promoted and the added dim removed; batch dims broadcast. */
const matmul: ShapeRule = (c: RuleCtx) => {
  const a = c.shape(0);
  const b = c.shape(1);
  if (!a || !b) return [{ dtype: c.dtype(0) }];
  if (a.length === 0 || b.length === 0) c.fail(`operands must not be scalars (${describe(c, ["A", "B"])})`);
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k1 = a2[a2.length - 1]!;
  const k2 = b2[b2.length - 2]!;
  if (unify(k1, k2) === undefined) c.fail(`inner dims differ: ${k1} vs ${k2} (${describe(c, ["A", "B"])})`);
  let batch: Dim[];
  try {
    batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2));
  } catch (e) {
    if (e instanceof BroadcastError) c.fail(`batch dims do not broadcast (${describe(c, ["A", "B"])})`);
    throw e;
  }
  const shape = [...batch];
  if (a.length > 1) shape.push(a2[a2.length - 2]!);
  if (b.length > 1) shape.push(b2[b2.length - 1]!);
  return [{ dtype: c.dtype(0), shape }];
};

export const linalgRules: Record<string, ShapeRule> = { Gemm: gemm, MatMul: matmul };
