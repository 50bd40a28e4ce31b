import { attr } from "../../onnx/ir.js";
import type { GradContext } from "../context.js";
import type { RuleSet } from "../rule.js";

/** Swap the last two axes of a rank-r value. */
function transposeLast(c: GradContext, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return c.op("Transpose", [x], { perm });
}

/**
 * MatMul with numpy semantics: batched, broadcast batch dims, 1-D operands promoted. 2-D products use Gemm with
 * transpose flags (no Transpose node), and a 2-D weight applied to a batched input gets its gradient from one
 * Gemm over the flattened batch instead of a batched MatMul + ReduceSum.
 */
function matmulGrad(c: GradContext): (string | undefined)[] {
  const [a, b] = [c.x(0), c.x(1)];
  const dy0 = c.dy()!;
  const ra = c.needRank(a);
  const rb = c.needRank(b);
  if (ra === 1 && rb === 1) {
    // dot product: y is a scalar
    return [c.needs(0) ? c.op("Mul", [dy0, b]) : undefined, c.needs(1) ? c.op("Mul", [dy0, a]) : undefined];
  }
  // promote 1-D operands the way MatMul does: a → [1, K], b → [K, 1], and dy gets the matching unit axis
  const A = ra === 1 ? c.op("Unsqueeze", [a, c.int64s([0])]) : a;
  const B = rb === 1 ? c.op("Unsqueeze", [b, c.int64s([1])]) : b;
  const dy =
    ra === 1
      ? c.op("Unsqueeze", [dy0, c.int64s([-2])])
      : rb === 1
        ? c.op("Unsqueeze", [dy0, c.int64s([-1])])
        : dy0;
  const rA = Math.max(ra, 2);
  const rB = Math.max(rb, 2);
  const rY = Math.max(rA, rB);
  const batchAxes = Array.from({ length: rY - 2 }, (_, i) => i);
  const out: (string | undefined)[] = [undefined, undefined];
  if (c.needs(0)) {
    if (rY === 2) out[0] = c.op("Gemm", [dy, B], { transB: 1 });
    else {
      const da = c.op("MatMul", [dy, transposeLast(c, B, rB)]);
      if (ra === 1) out[0] = c.reduceSum(da, [...batchAxes, rY - 2], false);
      else if (rA === 2) out[0] = c.reduceSum(da, batchAxes, false);
      else out[0] = rb === 1 || sameBatch(c, a, rY) ? da : c.reduceTo(da, a, c.y());
    }
    if (ra === 1 && rY === 2) out[0] = c.op("Reshape", [out[0]!, c.int64s([-1])]);
  }
  if (c.needs(1)) {
    if (rY === 2) out[1] = c.op("Gemm", [A, dy], { transA: 1 });
    else if (rB === 2) {
      // B shared across the batch: dB = Aᵀ dY with the batch flattened into the contraction
      const k = c.staticShape(a)?.at(-1);
      const n = rb === 1 ? 1 : c.staticShape(b)?.at(-1);
      if (k === undefined || n === undefined)
        c.fail("a 2-D MatMul operand needs static inner dims; run shape inference first");
      const flatA = c.op("Reshape", [A, c.int64s([-1, k])]);
      const flatDy = c.op("Reshape", [dy, c.int64s([-1, n])]);
      out[1] = c.op("Gemm", [flatA, flatDy], { transA: 1 });
    } else {
      const db = c.op("MatMul", [transposeLast(c, A, rA), dy]);
      out[1] = ra === 1 || sameBatch(c, b, rY) ? db : c.reduceTo(db, b, c.y());
    }
    if (rb === 1) out[1] = c.op("Reshape", [out[1]!, c.int64s([-1])]);
  }
  return out;
}

/** Whether an operand of full rank has exactly the result's batch dims (no broadcasting to undo). */
function sameBatch(c: GradContext, operand: string, rY: number): boolean {
  const s = c.shape(operand);
  const ys = c.shape(c.y());
  if (!s || !ys || s.length !== rY) return false;
  return s.slice(0, -2).every((d, i) => d === ys[i] && d !== null);
}

/**
 * Gemm: Y = α·op(A)·op(B) + β·C. Each gradient is one Gemm with the transposes folded into its flags.
 */
function gemmGrad(c: GradContext): (string | undefined)[] {
  const [a, b, cc] = [c.x(0), c.x(1), c.x(2)];
  const dy = c.dy()!;
  const alpha = c.float("alpha", 1);
  const beta = c.float("beta", 1);
  const tA = c.int("transA", 0);
  const tB = c.int("transB", 0);
  const out: (string | undefined)[] = [undefined, undefined, undefined];
  if (c.needs(0)) {
    // op(A) gradient = α dY op(B)ᵀ
    out[0] = tA
      ? c.op("Gemm", [b, dy], { alpha: attr.float(alpha), transA: tB, transB: 1 })
      : c.op("Gemm", [dy, b], { alpha: attr.float(alpha), transB: 1 - tB });
  }
  if (c.needs(1)) {
    // op(B) gradient = α op(A)ᵀ dY
    out[1] = tB
      ? c.op("Gemm", [dy, a], { alpha: attr.float(alpha), transA: 1, transB: tA })
      : c.op("Gemm", [a, dy], { alpha: attr.float(alpha), transA: 1 - tA });
  }
  if (c.needs(2) && cc) {
    const scaled = beta === 1 ? dy : c.op("Mul", [dy, c.scalar(beta, dy)]);
    out[2] = c.reduceTo(scaled, cc, c.y());
  }
  return out;
}

export const matmulRules: RuleSet = { MatMul: matmulGrad, Gemm: gemmGrad };
