/**
 * Drift statistics: latency percentiles, and how far two runs of one tensor differ — in its units and in
 * quantization steps (what one step is comes from layers.ts), with a histogram of the differences.
 */
import { DeviceError } from "../errors.js";
import type { StepInfo } from "../layers.js";
import type { Difference, Stats } from "./report.js";

/** Nearest-rank percentiles. */
export function stats(values: number[]): Stats {
  if (!values.length)
    return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, mean: Number.NaN, max: Number.NaN };
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return {
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    max: s.at(-1)!,
  };
}

/** Differences of two runs of a tensor, also in quantization steps (`step`; "range" takes the host's range). */
export function difference(
  name: string,
  host: Float32Array,
  board: Float32Array,
  dims: number[],
  step: StepInfo,
): Difference {
  if (host.length !== board.length) {
    throw new DeviceError(
      "shape-mismatch",
      `'${name}': the board returned ${board.length} values, the host ${host.length}`,
    );
  }
  let maxAbs = 0;
  let sum = 0;
  let ref = 0;
  let changed = 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < host.length; i++) {
    const h = host[i]!;
    const d = Math.abs(h - board[i]!);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    if (d !== 0) changed++;
    sum += Number.isNaN(d) ? 0 : d;
    ref = Math.max(ref, Math.abs(h));
    if (h < lo) lo = h;
    if (h > hi) hi = h;
  }
  const scale =
    step.kind === "range" ? Float32Array.of(Math.max((hi - lo) / 255, Number.MIN_VALUE)) : step.scale;
  const shown = step.kind === "integer" ? step.quantScale : scale;
  return {
    name,
    maxAbs,
    meanAbs: host.length ? sum / host.length : 0,
    refMaxAbs: ref,
    maxSteps: maxSteps(host, board, dims, scale, step.axis),
    stepKind: step.kind,
    stepSize: Math.max(...scale),
    ...(shown ? { scale: shown.length === 1 ? shown[0]! : Array.from(shown) } : {}),
    changed: host.length ? changed / host.length : 0,
    histogram: stepHistogram(host, board, Math.max(...scale), maxAbs),
  };
}

/** The largest |host − board| in steps of `scale` (one per channel along `axis` when longer than 1). */
function maxSteps(
  host: Float32Array,
  board: Float32Array,
  dims: number[],
  scale: Float32Array,
  stepAxis: number,
): number {
  const axis = stepAxis < 0 ? dims.length - 1 : stepAxis;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const along = dims[axis] ?? 1;
  let most = 0;
  for (let i = 0; i < host.length; i++) {
    const s = scale.length === 1 ? scale[0]! : scale[Math.floor(i / inner) % along]!;
    const d = Math.abs(host[i]! - board[i]!);
    const v = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d / s;
    if (v > most) most = v;
  }
  return most;
}

/** |host − board| counted in bins [0, ½), [½, 1), [1, 2), … steps of `step`, up to the largest difference. */
function stepHistogram(host: Float32Array, board: Float32Array, step: number, maxAbs: number) {
  const unit = step > 0 && Number.isFinite(step) ? step : Math.max(maxAbs, 1);
  const edges = [0, 0.5 * unit];
  while (edges.at(-1)! <= maxAbs && edges.length < 40 && Number.isFinite(maxAbs))
    edges.push(2 * edges.at(-1)!);
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (let i = 0; i < host.length; i++) {
    const d = Math.abs(host[i]! - board[i]!);
    let b = 0;
    while (b < counts.length - 1 && !(d < edges[b + 1]!)) b++;
    counts[b]!++;
  }
  return { edges, counts };
}

/** The largest |a − b| (infinite when either is NaN). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(m, d);
  }
  return m;
}
