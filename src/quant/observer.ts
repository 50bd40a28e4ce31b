/**
 * Observers: they watch the values a tensor takes (calibration batches, or a weight) and choose the range
 * [min, max] its quantizer should cover. As torch.ao.quantization.observer: min-max, moving-average min-max,
 * percentile, MSE-optimal and histogram/entropy (KL divergence, as TensorRT's calibrator). Histogram-based
 * observers keep 2048 bins over a range that widens (merging bins) when new values fall outside it.
 */
export type ObserverKind = "minmax" | "moving-average" | "percentile" | "mse" | "entropy";

export const OBSERVER_KINDS: ObserverKind[] = ["minmax", "moving-average", "percentile", "mse", "entropy"];

export interface Range {
  min: number;
  max: number;
}

export interface Observer {
  readonly kind: ObserverKind;
  observe(values: ArrayLike<number>): void;
  /** The range to quantize, for a quantizer with `levels` integer codes (e.g. 256), signed or not. */
  range(levels: number, symmetric: boolean): Range;
}

export class ObserverError extends Error {
  override name = "ObserverError";
}

function extent(values: ArrayLike<number>): Range {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max))
    throw new ObserverError("observed values are empty or not finite");
  return { min, max };
}

export class MinMaxObserver implements Observer {
  readonly kind: ObserverKind = "minmax";
  protected r?: Range;
  observe(values: ArrayLike<number>): void {
    const e = extent(values);
    this.r = this.r ? { min: Math.min(this.r.min, e.min), max: Math.max(this.r.max, e.max) } : e;
  }
  range(): Range {
    if (!this.r) throw new ObserverError(`the ${this.kind} observer has seen no values`);
    return { ...this.r };
  }
}

/** r ← r + c·(batch − r), starting at the first batch's extent (PyTorch's averaging constant 0.01). */
export class MovingAverageObserver extends MinMaxObserver {
  override readonly kind: ObserverKind = "moving-average";
  constructor(readonly c = 0.01) {
    super();
  }
  override observe(values: ArrayLike<number>): void {
    const e = extent(values);
    if (!this.r) this.r = e;
    else
      this.r = {
        min: this.r.min + this.c * (e.min - this.r.min),
        max: this.r.max + this.c * (e.max - this.r.max),
      };
  }
}

const BINS = 2048;

/** A histogram over [lo, hi] that doubles its span (merging bin pairs) to take values outside it. */
export class Histogram {
  counts = new Float64Array(BINS);
  lo = 0;
  hi = 0;
  total = 0;

  add(values: ArrayLike<number>): void {
    const e = extent(values);
    if (this.total === 0) {
      this.lo = Math.min(e.min, 0);
      this.hi = Math.max(e.max, 0);
      if (this.hi === this.lo) this.hi = this.lo + 1e-8;
    }
    while (e.min < this.lo || e.max > this.hi) this.widen(e);
    const w = (this.hi - this.lo) / BINS;
    for (let i = 0; i < values.length; i++) {
      const b = Math.min(BINS - 1, Math.max(0, Math.floor((values[i]! - this.lo) / w)));
      this.counts[b]!++;
    }
    this.total += values.length;
  }

  /** Double the span towards the side that needs it, merging pairs of bins. */
  private widen(e: Range): void {
    const span = this.hi - this.lo;
    const merged = new Float64Array(BINS);
    const downward = e.min < this.lo;
    const shift = downward ? BINS / 2 : 0;
    for (let b = 0; b < BINS; b++) merged[shift + (b >> 1)]! += this.counts[b]!;
    this.counts = merged;
    if (downward) this.lo -= span;
    else this.hi += span;
  }

  binWidth(): number {
    return (this.hi - this.lo) / BINS;
  }

  /** The value below which a share `p` of the observed values lie. */
  quantile(p: number): number {
    const target = p * this.total;
    let acc = 0;
    for (let b = 0; b < BINS; b++) {
      acc += this.counts[b]!;
      if (acc >= target) return this.lo + (b + 1) * this.binWidth();
    }
    return this.hi;
  }
}

abstract class HistogramObserver implements Observer {
  abstract readonly kind: ObserverKind;
  readonly hist = new Histogram();
  observe(values: ArrayLike<number>): void {
    this.hist.add(values);
  }
  abstract range(levels: number, symmetric: boolean): Range;
  protected check(): void {
    if (this.hist.total === 0) throw new ObserverError(`the ${this.kind} observer has seen no values`);
  }
}

/** Clip at the p-th and (1−p)-th quantiles (default p = 99.99 %). */
export class PercentileObserver extends HistogramObserver {
  readonly kind: ObserverKind = "percentile";
  constructor(readonly p = 0.9999) {
    super();
  }
  range(_levels: number, symmetric: boolean): Range {
    this.check();
    const h = this.hist;
    const max = Math.min(h.hi, h.quantile(this.p));
    const min = Math.max(h.lo, h.quantile(1 - this.p) - h.binWidth());
    if (symmetric) {
      const a = Math.max(Math.abs(min), Math.abs(max));
      return { min: -a, max: a };
    }
    return { min: Math.min(min, 0), max: Math.max(max, 0) };
  }
}

/**
 * The range among shrunk versions of the observed extent [s·min, s·max] (s = 1, 0.995, …, 0.005) that minimises the
 * expected squared quantization error (rounding noise w²/12 inside, squared clipping distance outside), computed
 * from the histogram's bin centres.
 */
export class MseObserver extends HistogramObserver {
  readonly kind: ObserverKind = "mse";
  range(levels: number, symmetric: boolean): Range {
    this.check();
    const h = this.hist;
    const w = h.binWidth();
    let best = { err: Number.POSITIVE_INFINITY, min: h.lo, max: h.hi };
    const amax = Math.max(Math.abs(h.lo), Math.abs(h.hi));
    for (let k = 200; k >= 1; k--) {
      const s = k / 200;
      const min = symmetric ? -amax * s : Math.min(0, h.lo * s);
      const max = symmetric ? amax * s : Math.max(0, h.hi * s);
      const step = (max - min) / (levels - 1);
      if (step <= 0) continue;
      let err = 0;
      for (let b = 0; b < h.counts.length; b++) {
        const n = h.counts[b]!;
        if (n === 0) continue;
        const v = h.lo + (b + 0.5) * w;
        if (v < min) err += n * (min - v) ** 2;
        else if (v > max) err += n * (v - max) ** 2;
        else err += (n * step * step) / 12;
      }
      if (err < best.err) best = { err, min, max };
    }
    return { min: best.min, max: best.max };
  }
}

/**
 * TensorRT's entropy calibration: the threshold t (in bins of |x|) minimising KL(P‖Q), where P is the histogram
 * clipped at t (outliers added to the last bin) and Q is P quantized to `levels/2` (symmetric) or `levels` bins.
 */
export class EntropyObserver extends HistogramObserver {
  readonly kind: ObserverKind = "entropy";
  range(levels: number, symmetric: boolean): Range {
    this.check();
    const h = this.hist;
    const w = h.binWidth();
    // fold to magnitudes for symmetric ranges; one-sided (non-negative) data uses the bins above 0 as they are
    const zeroBin = Math.round(-h.lo / w);
    const mags = new Float64Array(h.counts.length);
    let nb = 0;
    for (let b = 0; b < h.counts.length; b++) {
      const m = Math.abs(b - zeroBin);
      if (m < mags.length) {
        mags[m]! += h.counts[b]!;
        nb = Math.max(nb, m + 1);
      }
    }
    const target = symmetric ? Math.floor(levels / 2) : levels;
    if (nb <= target) return this.finish(nb * w, symmetric);
    let bestT = nb;
    let bestKl = Number.POSITIVE_INFINITY;
    for (let t = target; t <= nb; t += Math.max(1, Math.floor((nb - target) / 256))) {
      const p = Array.from(mags.subarray(0, t));
      let outliers = 0;
      for (let b = t; b < nb; b++) outliers += mags[b]!;
      p[t - 1]! += outliers;
      const q = new Float64Array(t);
      const per = t / target;
      for (let j = 0; j < target; j++) {
        const a = Math.floor(j * per);
        const e = j === target - 1 ? t : Math.floor((j + 1) * per);
        let sum = 0;
        let nz = 0;
        for (let b = a; b < e; b++) {
          sum += mags[b]!;
          if (mags[b]! > 0) nz++;
        }
        for (let b = a; b < e; b++) if (mags[b]! > 0) q[b] = sum / nz;
      }
      const ps = p.reduce((x, y) => x + y, 0);
      const qs = q.reduce((x, y) => x + y, 0);
      let kl = 0;
      for (let b = 0; b < t; b++) {
        if (p[b]! === 0) continue;
        const pp = p[b]! / ps;
        const qq = q[b]! / qs;
        kl += qq > 0 ? pp * Math.log(pp / qq) : pp * 20;
      }
      if (kl < bestKl) {
        bestKl = kl;
        bestT = t;
      }
    }
    return this.finish((bestT + 0.5) * w, symmetric);
  }

  private finish(a: number, symmetric: boolean): Range {
    const h = this.hist;
    if (symmetric) return { min: -a, max: a };
    return { min: Math.min(Math.max(h.lo, -a), 0), max: Math.min(h.hi, a) };
  }
}

export function makeObserver(kind: ObserverKind): Observer {
  switch (kind) {
    case "minmax":
      return new MinMaxObserver();
    case "moving-average":
      return new MovingAverageObserver();
    case "percentile":
      return new PercentileObserver();
    case "mse":
      return new MseObserver();
    case "entropy":
      return new EntropyObserver();
    default:
      throw new ObserverError(
        `unknown observer '${kind as string}'; choose one of ${OBSERVER_KINDS.join(", ")}`,
      );
  }
}
