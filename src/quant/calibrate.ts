import type { Dataset } from "../data/dataset.js";
import type { NetModel } from "../nn/model.js";
import { type Tensor, tensor, toFloat32 } from "../onnx/tensor.js";
import { observeValues } from "./layer-data.js";
import { makeObserver, type Observer, type ObserverKind, type Range } from "./observer.js";
import type { Placement, WeightPoint } from "./placement.js";
import type { TensorQConfig } from "./qconfig.js";
import { qparamsFor, weightQParams } from "./qparams.js";

export interface CalibrationOptions {
  /** Batches of the dataset to observe (default 32). */
  batches?: number;
  batchSize?: number;
  /** Seed of the (shuffled) calibration batches. */
  seed?: number;
  threads?: number;
  /** Replace every activation observer of the qconfig with this one. */
  observer?: TensorQConfig["observer"];
}

/**
 * Post-training calibration: run the float model's eval graph on calibration batches with every activation point
 * as an extra output, feed each to its observer, and turn the observed ranges into scales and zero points; weight
 * scales come from the weights themselves (folded with their BN's running statistics where BN will be folded).
 * Returns the values of every `<tensor>.scale` / `<tensor>.zero_point` of the placement.
 */
export async function calibrate(
  net: NetModel,
  placement: Placement,
  data: Dataset,
  opts: CalibrationOptions = {},
): Promise<Map<string, Tensor>> {
  const [only] = await calibrateEach(net, placement, data, [opts.observer], opts);
  return only!;
}

/**
 * `calibrate` with several observers in one pass over the data: one result per entry of `observers`, in order
 * (undefined: each activation's own observer from the qconfig).
 */
export async function calibrateEach(
  net: NetModel,
  placement: Placement,
  data: Dataset,
  observers: (ObserverKind | undefined)[],
  opts: Omit<CalibrationOptions, "observer"> = {},
): Promise<Map<string, Tensor>[]> {
  const results = observers.map(() => new Map<string, Tensor>());
  for (const out of results) for (const w of placement.weights) weightParams(net, w, out);
  const taps = placement.activations.map((a) => a.value);
  // every activation left in float (mixed precision can get there): weights only, nothing to observe
  if (!taps.length) return results;
  const seen = observers.map((kind) => {
    const m = new Map<string, Observer>();
    for (const a of placement.activations) m.set(a.value, makeObserver(kind ?? a.cfg.observer));
    return m;
  });
  await observeValues(net, taps, data, opts, (t, v) => {
    for (const m of seen) m.get(t)!.observe(v);
  });
  for (const [i, m] of seen.entries()) activationParams(placement, m, results[i]!);
  return results;
}

/** Scales and zero points from observed ranges; points sharing a scale (Concat inputs) get the union of theirs. */
function activationParams(
  placement: Placement,
  observers: Map<string, Observer>,
  out: Map<string, Tensor>,
): void {
  const ranges = new Map<string, Range>();
  for (const a of placement.activations) {
    const { qmin, qmax } = a.spec;
    const r = observers.get(a.value)!.range(qmax - qmin + 1, a.cfg.symmetric);
    const prev = ranges.get(a.scale);
    ranges.set(a.scale, prev ? { min: Math.min(prev.min, r.min), max: Math.max(prev.max, r.max) } : r);
  }
  for (const a of placement.activations) {
    const p = qparamsFor(ranges.get(a.scale)!, a.cfg);
    out.set(a.scale, tensor("float32", [], [p.scale]));
    out.set(a.zeroPoint, zeroPointTensor(a.spec.dtype, a.spec.learnZeroPoint, [], [p.zeroPoint]));
  }
}

/** Per-channel (axis 1) minimum and maximum of a value over the calibration batches. */
export interface ChannelRange {
  min: Float32Array;
  max: Float32Array;
}

/** max |x| per channel of a range. */
export function absMax(r: ChannelRange): Float32Array {
  return Float32Array.from(r.max, (m, i) => Math.max(m, -r.min[i]!));
}

/** The per-channel ranges of `values` (node outputs of the float model, [N, C, ...]) on calibration batches. */
export async function channelRanges(
  net: NetModel,
  values: string[],
  data: Dataset,
  opts: CalibrationOptions = {},
): Promise<Map<string, ChannelRange>> {
  const out = new Map<string, ChannelRange>();
  await observeValues(net, [...new Set(values)], data, opts, (t, v, dims) => {
    const c = dims[1] ?? 1;
    const inner = dims.slice(2).reduce((a, b) => a * b, 1);
    let r = out.get(t);
    if (!r) {
      r = { min: new Float32Array(c).fill(Infinity), max: new Float32Array(c).fill(-Infinity) };
      out.set(t, r);
    }
    for (let i = 0; i < v.length; i++) {
      const ch = Math.floor(i / inner) % c;
      if (v[i]! < r.min[ch]!) r.min[ch] = v[i]!;
      if (v[i]! > r.max[ch]!) r.max[ch] = v[i]!;
    }
  });
  return out;
}

function zeroPointTensor(
  dtype: "uint8" | "int8" | "int32",
  learned: boolean,
  dims: number[],
  v: ArrayLike<number>,
): Tensor {
  return learned ? tensor("float32", dims, v) : tensor(dtype, dims, v);
}

/** The weight as it will be quantized: folded with its BN (running statistics) when BN follows the conv. */
export function effectiveWeight(net: NetModel, w: WeightPoint): Float32Array {
  const init = (k: string) => toFloat32(net.eval.initializers.get(k)!);
  const wt = net.eval.initializers.get(w.weight)!;
  const data = toFloat32(wt).slice();
  if (!w.bn) return data;
  const gamma = init(w.bn.gamma);
  const variance = init(w.bn.variance);
  const per = data.length / wt.dims[0]!;
  for (let c = 0; c < wt.dims[0]!; c++) {
    const f = Math.fround(
      gamma[c]! / Math.fround(Math.sqrt(Math.fround(variance[c]! + Math.fround(w.bn.eps)))),
    );
    for (let i = 0; i < per; i++) data[c * per + i] = Math.fround(data[c * per + i]! * f);
  }
  return data;
}

function weightParams(net: NetModel, w: WeightPoint, out: Map<string, Tensor>): void {
  const dims = net.eval.initializers.get(w.weight)!.dims;
  const p = weightQParams(effectiveWeight(net, w), dims, w.cfg, w.axis);
  const sdims = w.spec.axis >= 0 ? [p.scale.length] : [];
  out.set(w.scale, tensor("float32", sdims, p.scale));
  out.set(w.zeroPoint, zeroPointTensor(w.spec.dtype, w.spec.learnZeroPoint, sdims, p.zeroPoint));
}
