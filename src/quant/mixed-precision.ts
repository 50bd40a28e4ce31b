/**
 * Mixed precision when a quantized model is still over its accuracy budget: give the layers that lose the most
 * higher precision — 8-bit weights where the preset has fewer bits (w4a8), else float — cheapest first, re-measuring
 * with the caller's metric after each change until it is within the budget.
 */
import type { Dataset } from "../data/dataset.js";
import type { NetModel } from "../nn/model.js";
import type { Tensor } from "../onnx/tensor.js";
import { calibrate } from "./calibrate.js";
import type { ObserverKind } from "./observer.js";
import { type Placement, placeQuant } from "./placement.js";
import { applyQuant } from "./prepare.js";
import { type QConfig, qconfigFrom } from "./qconfig.js";
import type { LayerSensitivity } from "./sensitivity.js";

/** What the metric callback gets: the fake-quantized model and how it was quantized. Higher metric is better. */
export interface Candidate {
  net: NetModel;
  qconfig: QConfig;
  placement: Placement;
  qparams: Map<string, Tensor>;
}

export type CandidateMetric = (c: Candidate) => Promise<number>;

export interface MixedPrecisionOptions {
  /** The qconfig preset everything starts at (e.g. "w4a8"). */
  preset: string;
  /** Layers already kept in float and weight bits already chosen (e.g. by an earlier stage). */
  keepFloat?: string[];
  weightBits?: Record<string, number>;
  /** The metric a candidate must reach (e.g. float accuracy − the allowed drop, or an agreement/SQNR floor). */
  target: number;
  /** The metric of the float model, the reference for per-layer sensitivity (measured with `metric` if absent). */
  floatMetric?: number;
  /**
   * Per-layer sensitivity from `sensitivity()` (its `delta`: metric with only that layer quantized − float). Absent:
   * measured here the same way, with `metric`, one layer quantized at a time.
   */
  sensitivities?: Pick<LayerSensitivity, "layer" | "delta">[];
  /** Calibration of each candidate. */
  calibrationBatches?: number;
  observer?: ObserverKind;
  batchSize?: number;
  seed?: number;
  threads?: number;
  /** Stop after this many changes (default: every layer raised as far as float). */
  maxChanges?: number;
  log?: (message: string) => void;
}

export interface PrecisionChange {
  layer: string;
  /**
   * Weight bits before and after (32: float; the layer's input, and its output where an Add or Concat reads it, are
   * then no longer quantized either).
   */
  from: number;
  to: number;
  /** Weight parameters of the layer, and the bits of storage the change costs (parameters × added bits). */
  params: number;
  costBits: number;
  /** Metric lost with only this layer quantized (the sensitivity the order used; see `sensitivity`). */
  sensitivity: number;
  /** The model's metric after this change. */
  metric: number;
}

export interface MixedPrecisionResult {
  /** The metric of the starting configuration (every layer at the preset). */
  start: number;
  changes: PrecisionChange[];
  keepFloat: string[];
  weightBits: Record<string, number>;
  qconfig: QConfig;
  /** The final configuration as measured: calibrated with the qconfig's (or `observer`'s) observers. */
  candidate: Candidate;
  metric: number;
  meetsTarget: boolean;
  /**
   * Per-layer sensitivity used, most sensitive first: −delta of given sensitivities, or, measured, the metric below
   * min(float metric, target) with only that layer quantized (below the best single layer when no layer alone falls
   * under the target).
   */
  sensitivity: { layer: string; loss: number }[];
}

export class MixedPrecisionError extends Error {
  override name = "MixedPrecisionError";
}

const FLOAT_BITS = 32;

/**
 * Greedy mixed precision. Each layer can move up: preset bits → 8 (when fewer) → float. The next move is the one
 * with the least storage cost (weight parameters × added bits) per point of metric the layer loses on its own
 * (its sensitivity), so a small sensitive layer goes before a large one barely hurt; after each move the model is
 * recalibrated and measured with `metric`, until it reaches `target` or nothing is left to raise.
 */
export async function chooseMixedPrecision(
  net: NetModel,
  calibration: Dataset,
  metric: CandidateMetric,
  opts: MixedPrecisionOptions,
): Promise<MixedPrecisionResult> {
  const log = opts.log ?? (() => {});
  const keepFloat = [...(opts.keepFloat ?? [])];
  const weightBits = { ...(opts.weightBits ?? {}) };
  const measure = async (): Promise<{ value: number; qconfig: QConfig; candidate: Candidate }> => {
    const qconfig = qconfigFrom(opts.preset, { keepFloat, weightBits });
    const c = await candidate(net, qconfig, calibration, opts);
    return { value: await metric(c), qconfig, candidate: c };
  };
  let current = await measure();
  const start = current.value;
  log(`start (${opts.preset}): ${start.toFixed(4)}; target ${opts.target.toFixed(4)}`);
  const sens = await sensitivities(net, calibration, metric, opts, current.qconfig);
  const loss = new Map(sens.map((s) => [s.layer, s.loss]));
  const full = placeQuant(net, current.qconfig);
  const size = new Map(full.weights.map((w) => [w.layer, numel(net.eval.initializers.get(w.weight)!.dims)]));
  const bitsOf = new Map(full.weights.map((w) => [w.layer, w.cfg.bits]));
  const changes: PrecisionChange[] = [];
  const limit = opts.maxChanges ?? Number.POSITIVE_INFINITY;
  while (current.value < opts.target && changes.length < limit) {
    const move = nextMove(bitsOf, keepFloat, size, loss);
    if (!move) break;
    if (move.to === FLOAT_BITS) keepFloat.push(move.layer);
    else weightBits[move.layer] = move.to;
    bitsOf.set(move.layer, move.to);
    current = await measure();
    changes.push({ ...move, sensitivity: loss.get(move.layer) ?? 0, metric: current.value });
    log(
      `${move.layer}: ${move.from}-bit → ${move.to === FLOAT_BITS ? "float" : `${move.to}-bit`} (+${move.costBits} bits): ${current.value.toFixed(4)}`,
    );
  }
  return {
    start,
    changes,
    keepFloat,
    weightBits,
    qconfig: current.qconfig,
    candidate: current.candidate,
    metric: current.value,
    meetsTarget: current.value >= opts.target,
    sensitivity: sens,
  };
}

/**
 * The cheapest move per point lost: raise a layer below 8 bits to 8, or a layer at ≥ 8 bits to float. The last
 * quantized layer is never moved to float: a model with every layer in float is not a quantized model.
 */
function nextMove(
  bitsOf: Map<string, number>,
  keepFloat: string[],
  size: Map<string, number>,
  loss: Map<string, number>,
): Omit<PrecisionChange, "sensitivity" | "metric"> | undefined {
  let best: (Omit<PrecisionChange, "sensitivity" | "metric"> & { price: number }) | undefined;
  const stillQuantized = [...bitsOf].filter(([l, b]) => !keepFloat.includes(l) && b < FLOAT_BITS).length;
  for (const [layer, from] of bitsOf) {
    if (keepFloat.includes(layer) || from >= FLOAT_BITS) continue;
    const to = from < 8 ? 8 : FLOAT_BITS;
    if (to === FLOAT_BITS && stillQuantized <= 1) continue;
    const params = size.get(layer)!;
    const costBits = params * (to - from);
    // a layer that loses nothing on its own is still raised, last (its loss may come from interactions)
    const price = costBits / Math.max(loss.get(layer) ?? 0, 1e-9);
    if (!best || price < best.price) best = { layer, from, to, params, costBits, price };
  }
  if (!best) return undefined;
  const { price: _, ...move } = best;
  return move;
}

/** Metric lost per layer, most sensitive first: given, or measured one quantized layer at a time. */
async function sensitivities(
  net: NetModel,
  calibration: Dataset,
  metric: CandidateMetric,
  opts: MixedPrecisionOptions,
  qconfig: QConfig,
): Promise<{ layer: string; loss: number }[]> {
  const full = placeQuant(net, qconfig);
  let out: { layer: string; loss: number }[];
  if (opts.sensitivities) {
    const known = new Set(full.weights.map((w) => w.layer));
    const unknown = opts.sensitivities.filter((s) => !known.has(s.layer)).map((s) => s.layer);
    if (unknown.length)
      throw new MixedPrecisionError(
        `sensitivity given for ${unknown.join(", ")}, not quantized layers of '${net.name}' (${[...known].join(", ")})`,
      );
    out = opts.sensitivities.map((s) => ({ layer: s.layer, loss: -s.delta }));
  } else {
    const reference =
      opts.floatMetric ?? (await metric({ net, qconfig, placement: empty(), qparams: new Map() }));
    const qparams = await calibrateFor(net, full, calibration, opts);
    const layerInputs = new Set(full.weights.map((w) => w.input));
    const alone: { layer: string; metric: number }[] = [];
    for (const w of full.weights) {
      // only this layer quantized: its weight, its input activation, and its output where no layer reads it as its
      // input (at a residual Add or a Concat): all that keeping it in float removes
      const only: Placement = {
        weights: [w],
        activations: full.activations.filter(
          (a) => a.value === w.input || (a.layer === w.layer && !layerInputs.has(a.value)),
        ),
      };
      const m = await metric({ net: applyQuant(net, only, qparams), qconfig, placement: only, qparams });
      alone.push({ layer: w.layer, metric: m });
    }
    // Points below min(float, target) with only this layer quantized: a metric unbounded at float (SQNR: ∞ dB)
    // would otherwise make every layer look equally, hugely sensitive, and the order follow size alone. When every
    // layer alone stays within the target (BlazeFace: each alone keeps the lowest cosine ≥ 99.87 against a target of
    // 99.84; together they fall to 99.0), points below the best single layer rank them instead.
    let ceiling = Math.min(reference, opts.target);
    if (alone.every((a) => a.metric >= ceiling))
      ceiling = Math.min(reference, Math.max(...alone.map((a) => a.metric)));
    out = alone.map((a) => ({ layer: a.layer, loss: Math.max(0, ceiling - a.metric) }));
  }
  return out.sort((a, b) => b.loss - a.loss);
}

async function candidate(
  net: NetModel,
  qconfig: QConfig,
  calibration: Dataset,
  opts: MixedPrecisionOptions,
): Promise<Candidate> {
  const placement = placeQuant(net, qconfig);
  // every layer in float: nothing to calibrate (the float model itself)
  if (!placement.weights.length && !placement.activations.length)
    return { net, qconfig, placement, qparams: new Map() };
  const qparams = await calibrateFor(net, placement, calibration, opts);
  return { net: applyQuant(net, placement, qparams), qconfig, placement, qparams };
}

function calibrateFor(
  net: NetModel,
  placement: Placement,
  calibration: Dataset,
  opts: MixedPrecisionOptions,
): Promise<Map<string, Tensor>> {
  return calibrate(net, placement, calibration, {
    batches: opts.calibrationBatches ?? 32,
    batchSize: opts.batchSize ?? 64,
    seed: opts.seed,
    threads: opts.threads,
    observer: opts.observer,
  });
}

const empty = (): Placement => ({ weights: [], activations: [] });
const numel = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
