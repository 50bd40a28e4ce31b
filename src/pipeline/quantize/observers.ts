/**
 * Post-training quantization with the observer chosen per tensor by the model's output error. Every observer
 * (min-max, percentile, MSE, entropy) calibrates every activation, all four fed in one pass over the data; then, on
 * 128 calibration samples, the fake-quantized model is scored by its output error against float (Σ over outputs of
 * noise/signal power) — first with one observer everywhere (the best becomes the start), then tensor by tensor, each
 * tensor taking the observer whose scale lowers the output error (an observer whose range is within 1% of the
 * current one is not tried). `searchSamples` lets the tensor-by-tensor search (most of PTQ's time on deep models
 * after calibration) score on fewer samples, its result then kept only if it also beats the best uniform choice on all of them; the
 * default searches on all, because on BlazeFace (128 crops) a 32-sample search overfitted: its choices were worse
 * on all 128 than percentile everywhere (Σ noise/signal 0.0346), where the full search reaches 0.0290, for 181 s
 * against 291 s. Scales and zero points are fed as graph inputs, so one ORT session serves every trial.
 */
import type { Dataset } from "../../data/dataset.js";
import type { NetModel } from "../../nn/model.js";
import { modelOf } from "../../onnx/codec.js";
import type { Graph } from "../../onnx/ir.js";
import type { Tensor } from "../../onnx/tensor.js";
import { calibrateEach } from "../../quant/calibrate.js";
import type { ObserverKind } from "../../quant/observer.js";
import type { Placement } from "../../quant/placement.js";
import { applyQuant } from "../../quant/prepare.js";
import { openSession, run } from "../../runtime/session.js";
import { evalBatches } from "../../train/evaluate.js";

export const PTQ_OBSERVERS: ObserverKind[] = ["minmax", "percentile", "mse", "entropy"];

/** Samples per scoring batch (a search on fewer samples scores on whole batches of these). */
const SEARCH_SAMPLES = 32;

export interface ObserverChoice {
  /** Every `<tensor>.scale` / `.zero_point` of the placement. */
  qparams: Map<string, Tensor>;
  /** Per activation scale, the observer chosen. */
  chosen: Record<string, ObserverKind>;
  /** Output error (noise/signal) with one observer everywhere, and after the per-tensor choice. */
  uniform: Record<string, number>;
  error: number;
}

export async function chooseObservers(
  net: NetModel,
  placement: Placement,
  calibration: Dataset,
  opts: {
    seed: number;
    threads?: number;
    batches?: number;
    scoreSamples?: number;
    /** Samples the tensor-by-tensor search scores on (default: all `scoreSamples`). */
    searchSamples?: number;
  },
): Promise<ObserverChoice> {
  // one pass over the data feeds every observer
  const each = await calibrateEach(net, placement, calibration, PTQ_OBSERVERS, {
    batches: opts.batches ?? 8,
    batchSize: 64,
    seed: opts.seed,
    threads: opts.threads,
  });
  const calibrated = new Map(PTQ_OBSERVERS.map((kind, i) => [kind, each[i]!]));
  const first = calibrated.get("minmax")!;
  const scales = [...new Set(placement.activations.map((a) => a.scale))];
  const zeroOf = new Map(placement.activations.map((a) => [a.scale, a.zeroPoint]));
  const g = applyQuant(net, placement, first).eval;
  const fed = scales.flatMap((s) => [s, zeroOf.get(s)!]);
  asInputs(g, fed, first);
  const scorer = await OutputErrorScorer.create(net, g, calibration, opts);
  try {
    const feeds = new Map<string, Tensor>();
    const setAll = (kind: ObserverKind) => {
      for (const s of scales) {
        feeds.set(s, calibrated.get(kind)!.get(s)!);
        feeds.set(zeroOf.get(s)!, calibrated.get(kind)!.get(zeroOf.get(s)!)!);
      }
    };
    const uniform: Record<string, number> = {};
    let best: ObserverKind = "minmax";
    for (const kind of PTQ_OBSERVERS) {
      setAll(kind);
      uniform[kind] = await scorer.error(feeds);
      if (uniform[kind]! < uniform[best]!) best = kind;
    }
    setAll(best);
    const chosen: Record<string, ObserverKind> = Object.fromEntries(scales.map((s) => [s, best]));
    const searchBatches = Math.ceil((opts.searchSamples ?? Number.POSITIVE_INFINITY) / SEARCH_SAMPLES);
    let error = await scorer.error(feeds, searchBatches);
    for (const s of scales) {
      for (const kind of PTQ_OBSERVERS) {
        if (kind === chosen[s]) continue;
        const keep = [feeds.get(s)!, feeds.get(zeroOf.get(s)!)!];
        // a range within 1% of the current one cannot change the error much: not worth a run
        if (sameRange(keep, calibrated.get(kind)!, s, zeroOf.get(s)!)) continue;
        feeds.set(s, calibrated.get(kind)!.get(s)!);
        feeds.set(zeroOf.get(s)!, calibrated.get(kind)!.get(zeroOf.get(s)!)!);
        const e = await scorer.error(feeds, searchBatches);
        if (e < error) {
          error = e;
          chosen[s] = kind;
        } else {
          feeds.set(s, keep[0]!);
          feeds.set(zeroOf.get(s)!, keep[1]!);
        }
      }
    }
    error = await scorer.error(feeds);
    // the search saw a quarter of the samples: if its choice is worse on all of them, one observer everywhere
    if (error > uniform[best]!) {
      setAll(best);
      for (const s of scales) chosen[s] = best;
      error = uniform[best]!;
    }
    const qparams = new Map(first);
    for (const [k, v] of feeds) qparams.set(k, v);
    return { qparams, chosen, uniform, error };
  } finally {
    await scorer.release();
  }
}

/** Whether an observer's scale for `scale` is within 1% of the current one, its zero point within 2 codes. */
function sameRange(current: Tensor[], other: Map<string, Tensor>, scale: string, zero: string): boolean {
  const [s0, z0] = current.map((t) => Number(t.data[0]));
  const s1 = Number(other.get(scale)!.data[0]);
  const z1 = Number(other.get(zero)!.data[0]);
  return Math.abs(s1 - s0!) <= 0.01 * s0! && Math.abs(z1 - z0!) <= 2;
}

/** Initializers `names` become graph inputs (of their dtype and shape), so a session takes them as feeds. */
function asInputs(g: Graph, names: string[], values: Map<string, Tensor>): void {
  for (const n of names) {
    const t = values.get(n)!;
    g.initializers.delete(n);
    g.inputs.push({ name: n, dtype: t.dtype, shape: [...t.dims] });
  }
  g.invalidate();
}

/**
 * The output error of a fake-quantized graph (scales as inputs) against float on fixed calibration batches:
 * Σ over outputs of Σ(q − f)² / Σf², i.e. the inverse SQNR summed, so outputs of different magnitude weigh alike.
 */
class OutputErrorScorer {
  private constructor(
    private readonly session: Awaited<ReturnType<typeof openSession>>,
    private readonly input: string,
    private readonly batches: { x: Tensor; ref: Record<string, Tensor> }[],
  ) {}

  static async create(
    net: NetModel,
    quantGraph: Graph,
    calibration: Dataset,
    opts: { threads?: number; scoreSamples?: number },
  ): Promise<OutputErrorScorer> {
    const floatSession = await openSession(modelOf(net.eval), { threads: opts.threads });
    const batches: { x: Tensor; ref: Record<string, Tensor> }[] = [];
    try {
      for await (const b of evalBatches(calibration, {
        batchSize: SEARCH_SAMPLES,
        limit: opts.scoreSamples ?? 128,
      })) {
        const x = { ...b.x, data: (b.x.data as Float32Array).slice() };
        batches.push({ x, ref: await run(floatSession, { [net.input]: x }) });
      }
    } finally {
      await floatSession.release();
    }
    const session = await openSession(modelOf(quantGraph), { threads: opts.threads, optimization: "basic" });
    return new OutputErrorScorer(session, net.input, batches);
  }

  /** The error on the first `batches` scoring batches (default all). */
  async error(feeds: Map<string, Tensor>, batches = this.batches.length): Promise<number> {
    let total = 0;
    const signal = new Map<string, number>();
    const noise = new Map<string, number>();
    for (const b of this.batches.slice(0, batches)) {
      const res = await run(this.session, { [this.input]: b.x, ...Object.fromEntries(feeds) });
      for (const [name, r] of Object.entries(b.ref)) {
        const f = r.data as Float32Array;
        const q = res[name]!.data as Float32Array;
        let s = 0;
        let n = 0;
        for (let i = 0; i < f.length; i++) {
          const d = q[i]! - f[i]!;
          s += f[i]! * f[i]!;
          n += d * d;
        }
        signal.set(name, (signal.get(name) ?? 0) + s);
        noise.set(name, (noise.get(name) ?? 0) + n);
      }
    }
    for (const [name, s] of signal) total += noise.get(name)! / Math.max(s, 1e-30);
    return total;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
