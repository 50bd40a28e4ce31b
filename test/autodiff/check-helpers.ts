import { expect } from "vitest";
import { type GradCheckResult, type GradCheckSpec, gradCheck } from "../../src/autodiff/gradcheck.js";

/**
 * Run a gradient check and assert its largest error is below `tol` (printing the check when it is not). Returns
 * the check, e.g. to assert which backward ops a rule chose.
 */
export async function expectGradOk(spec: GradCheckSpec, tol: number): Promise<GradCheckResult> {
  const r = await gradCheck(spec);
  if (process.env.GRADCHECK_VERBOSE)
    console.log(
      `${expect.getState().currentTestName}: max error ${r.maxError.toExponential(2)} (${r.dtype}), ${r.backwardNodes} backward nodes`,
    );
  if (!(r.maxError < tol))
    console.error(JSON.stringify({ ...r, backwardOps: r.backwardOps.join(" ") }, null, 1));
  expect(r.maxError).toBeLessThan(tol);
  return r;
}

/** n values from a fixed pseudo-random sequence, kept at least `gap` away from 0 (kinks of ReLU, Abs). */
export function awayFromZero(n: number, gap = 0.1, seed = 7): number[] {
  let s = seed;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const u = s / 2147483648;
    const mag = gap + 2 * Math.abs(u - 0.5) * 2;
    out.push((i % 2 === 0) === u > 0.3 ? mag : -mag);
  }
  return out;
}

/** n positive values in [lo, hi) (for Log, Sqrt, Div denominators). */
export function positive(n: number, lo = 0.5, hi = 2, seed = 3): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return lo + (hi - lo) * (s / 2147483648);
  });
}

/** n distinct values in a random order (no ties for MaxPool). */
export function distinct(n: number, seed = 11): number[] {
  const v = Array.from({ length: n }, (_, i) => (i - n / 2) / n);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  return v;
}
