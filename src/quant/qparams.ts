import { fakeQuantize, roundHalfEven } from "./fake-quant.js";
import { makeObserver, type Range } from "./observer.js";
import { intRange, type TensorQConfig } from "./qconfig.js";

/** Scales and zero points of one quantized tensor (one entry per tensor, or one per channel). */
export interface QParams {
  scale: Float32Array;
  zeroPoint: Int32Array;
}

/** The least scale: calibration never goes below it, and learned scales are held at it (they stay positive). */
export const MIN_SCALE = 1e-8;

/**
 * Scale and zero point covering a range: symmetric → s = max|x| / qmax, z = 0; asymmetric → the range is widened
 * to include 0 (so 0 is exact, as padding needs), s = (max − min) / (qmax − qmin), z = qmin − round(min / s).
 */
export function qparamsFor(r: Range, cfg: TensorQConfig): { scale: number; zeroPoint: number } {
  const { qmin, qmax } = intRange(cfg);
  if (cfg.symmetric) {
    const a = Math.max(Math.abs(r.min), Math.abs(r.max));
    return { scale: Math.fround(Math.max(a / qmax, MIN_SCALE)), zeroPoint: 0 };
  }
  const min = Math.min(r.min, 0);
  const max = Math.max(r.max, 0);
  const scale = Math.fround(Math.max((max - min) / (qmax - qmin), MIN_SCALE));
  const zeroPoint = Math.min(qmax, Math.max(qmin, qmin - roundHalfEven(min / scale)));
  return { scale, zeroPoint };
}

/**
 * Weight qparams, per output channel (axis) or per tensor, from the weight itself: min-max by default; "mse" (and
 * "percentile"/"entropy", which need many values and are not meant for weights) search the clipping that minimises
 * the squared error of the fake-quantized weight, exactly, with the ORT arithmetic.
 */
export function weightQParams(w: Float32Array, dims: number[], cfg: TensorQConfig, axis: number): QParams {
  const channels = cfg.perChannel ? dims[axis]! : 1;
  const inner = cfg.perChannel ? dims.slice(axis + 1).reduce((a, b) => a * b, 1) : w.length;
  const outer = cfg.perChannel ? dims.slice(0, axis).reduce((a, b) => a * b, 1) : 1;
  const scale = new Float32Array(channels);
  const zeroPoint = new Int32Array(channels);
  const { qmin, qmax } = intRange(cfg);
  for (let c = 0; c < channels; c++) {
    const vals = new Float32Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) vals[o * inner + i] = w[(o * channels + c) * inner + i]!;
    }
    const full = makeObserver("minmax");
    full.observe(vals);
    const r = full.range(qmax - qmin + 1, cfg.symmetric);
    let best = qparamsFor(r, cfg);
    if (cfg.observer !== "minmax" && cfg.observer !== "moving-average") {
      let bestErr = sqErr(vals, best, qmin, qmax);
      for (let k = 99; k >= 20; k--) {
        const cand = qparamsFor({ min: (r.min * k) / 100, max: (r.max * k) / 100 }, cfg);
        const err = sqErr(vals, cand, qmin, qmax);
        if (err < bestErr) {
          bestErr = err;
          best = cand;
        }
      }
    }
    scale[c] = best.scale;
    zeroPoint[c] = best.zeroPoint;
  }
  return { scale, zeroPoint };
}

function sqErr(v: Float32Array, p: { scale: number; zeroPoint: number }, qmin: number, qmax: number): number {
  const q = fakeQuantize(v, [v.length], [p.scale], [p.zeroPoint], qmin, qmax);
  let e = 0;
  for (let i = 0; i < v.length; i++) e += (v[i]! - q[i]!) ** 2;
  return e;
}
