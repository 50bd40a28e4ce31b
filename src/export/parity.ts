import type * as ort from "onnxruntime-node";
import type { Dataset } from "../data/dataset.js";
import { decodeModel } from "../onnx/codec.js";
import type { Model, ValueInfo } from "../onnx/ir.js";
import { EXACT_HOST_CONFIG } from "../runtime/host-config.js";
import { openSession, type SessionOptions, toOrt } from "../runtime/session.js";
import { argmax, evalBatches } from "../train/evaluate.js";
import { ExportError } from "./errors.js";
import { outputStep } from "./qdq.js";

/** The host session config of the parity check: see src/runtime/host-config.ts for why it is this one. */
export { EXACT_HOST_CONFIG };

export interface ParityThresholds {
  /** Least share of samples whose top-1 class must agree (default 0.999). */
  agreement: number;
  /** Least share of output values within one quantization step of the simulation (default 0.99). */
  withinOneStep: number;
  /**
   * When set, an output below `withinOneStep` still passes if the exported values match the simulation's with at
   * least this SQNR (dB; signal: the simulation's values, noise: the differences). Off by default. Why it exists:
   * the integer kernels sum exactly, the simulation in float32, so a value the simulation puts a hair off a rounding
   * tie (e.g. 144.4999986 steps) is rounded the other way in one of them; in a deep residual network whose layers
   * have a gain above one code per code (BlazeFace), those single flips spread until most outputs differ by a few
   * steps, although both models are the same quantized function; the difference stays tens of dB below the
   * signal. A real export error lands far lower (BlazeFace, one layer's weight scales doubled: −10 to 16 dB).
   */
  sqnrDb?: number;
}

export const DEFAULT_THRESHOLDS: ParityThresholds = { agreement: 0.999, withinOneStep: 0.99 };

export interface ParityOptions {
  /** Evaluation set: samples as the dataset stores them (the models normalise inside). */
  data: Dataset;
  /** At most this many samples (0: all). */
  limit?: number;
  batchSize?: number;
  threads?: number;
  thresholds?: Partial<ParityThresholds>;
  /** Session config of the exported model (default EXACT_HOST_CONFIG). */
  hostConfig?: Record<string, string>;
}

export interface OutputParity {
  name: string;
  /** Largest |exported − simulated|. */
  maxAbs: number;
  meanAbs: number;
  /**
   * The output's quantization step the thresholds use: "dequantize" — the scale of the 8-bit DequantizeLinear the
   * output comes from; "range" — an output in float (logits of a quantized layer) has none, so one step of 8-bit
   * min-max quantization of the simulation's values on this data, (max − min) / 255.
   */
  step: "dequantize" | "range";
  /** The step size (the largest, when per channel). */
  stepSize: number;
  /** Largest difference in steps. */
  maxSteps: number;
  /** Share of values within one step. */
  withinOneStep: number;
  /** 10·log10(Σ simulated² / Σ (exported − simulated)²), dB (Infinity when they are identical). */
  sqnrDb: number;
  /**
   * The same in steps of the int32 accumulator (s_x·s_w per channel) when the output is a quantized layer's sum: the
   * finest step the integer model has. One flipped activation upstream moves the logits by many of these.
   */
  accumulator: { maxSteps: number; withinOneStep: number } | null;
  /** Sample and index of the largest difference. */
  worst: { sample: number; index: number; exported: number; simulated: number } | null;
}

export interface ParityReport {
  samples: number;
  /** Share of samples whose top-1 class is the same. */
  agreement: number;
  simulationAccuracy: number;
  exportAccuracy: number;
  outputs: OutputParity[];
  thresholds: ParityThresholds;
  passed: boolean;
  /** Why it failed, naming the output that diverged. */
  failures: string[];
  hostConfig: Record<string, string>;
}

/**
 * Run the exported model (as a board runs it: ORT's default optimisations, so Q/DQ fuse into integer kernels) and
 * the fake-quant simulation (optimisation "basic", as QAT ran it) on the same samples and compare them.
 */
export async function checkParity(
  exported: Model | Uint8Array,
  simulation: Model,
  opts: ParityOptions,
): Promise<ParityReport> {
  const asked = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
  const hostConfig = { ...(opts.hostConfig ?? EXACT_HOST_CONFIG) };
  const model = exported instanceof Uint8Array ? decodeModel(exported) : exported;
  const ds = opts.data;
  const { input, names } = matchModels(model, simulation, ds);
  const base: SessionOptions = { threads: opts.threads };
  const exp = await openSession(exported instanceof Uint8Array ? exported : model, {
    ...base,
    config: hostConfig,
  });
  const sim = await openSession(simulation, { ...base, optimization: "basic" });
  const acc = new Map(names.map((n) => [n, new OutputDiffs()]));
  let agree = 0;
  let simCorrect = 0;
  let expCorrect = 0;
  let done = 0;
  let classifier = true;
  try {
    for await (const b of evalBatches(ds, { batchSize: opts.batchSize ?? 64, limit: opts.limit })) {
      const feeds: Record<string, ort.Tensor> = { [input.name]: toOrt(b.x) };
      const [re, rs] = [await exp.run(feeds, names), await sim.run(feeds, names)];
      for (const name of names) acc.get(name)!.add(re[name]!, rs[name]!, b.size, b.take, b.offset);
      // top-1 of the first output: agreement and both accuracies
      const e = re[names[0]!]!.data as Float32Array;
      const s = rs[names[0]!]!.data as Float32Array;
      const per = e.length / b.size;
      classifier = re[names[0]!]!.dims.length === 2 && per >= 2;
      for (let j = 0; j < b.take; j++) {
        const te = argmax(e, j * per, per);
        const ts = argmax(s, j * per, per);
        const y = Number(b.labels[j]);
        if (te === ts) agree++;
        if (te === y) expCorrect++;
        if (ts === y) simCorrect++;
      }
      done += b.take;
    }
  } finally {
    await exp.release();
    await sim.release();
  }
  if (done === 0) throw new ExportError(`the evaluation set '${ds.name}' is empty`);
  const outputs = names.map((name) => acc.get(name)!.result(name, outputStep(model.graph, name)));
  const agreement = agree / done;
  // top-1 agreement means something only for a [batch, classes] first output: the arg-max of a regressor or a score
  // map (BlazeFace's [1, 896, 16], a detector's [batch, classes + 4, rows, cols]) says nothing, so it is not asked
  const thresholds = classifier ? asked : { ...asked, agreement: 0 };
  const failures = parityFailures(names[0]!, agreement, done - agree, done, outputs, thresholds);
  return {
    samples: done,
    agreement,
    simulationAccuracy: simCorrect / done,
    exportAccuracy: expCorrect / done,
    outputs,
    thresholds,
    passed: failures.length === 0,
    failures,
    hostConfig,
  };
}

/** The exported model and the simulation take the same input and the dataset's samples; the outputs compared. */
function matchModels(model: Model, simulation: Model, ds: Dataset): { input: ValueInfo; names: string[] } {
  const g = model.graph;
  const input = g.inputs.find((v) => !g.initializers.has(v.name));
  if (!input) throw new ExportError("the exported model has no input");
  const simInput = simulation.graph.inputs.find((v) => !simulation.graph.initializers.has(v.name));
  if (!simInput || simInput.name !== input.name) {
    throw new ExportError(
      `the simulation's input is '${simInput?.name}', the exported model's '${input.name}'`,
    );
  }
  const names = g.outputs.map((o) => o.name);
  const missing = names.filter((n) => !simulation.graph.outputs.some((o) => o.name === n));
  if (missing.length)
    throw new ExportError(
      `outputs ${missing.join(", ")} of the exported model are not outputs of the simulation`,
    );
  const sampleDims = input.shape?.slice(1);
  if (sampleDims?.some((d, i) => typeof d === "number" && d !== ds.inputShape[i])) {
    throw new ExportError(
      `the model's input '${input.name}' is [${input.shape}] but dataset '${ds.name}' has samples of [${ds.inputShape}]`,
    );
  }
  return { input, names };
}

/** Differences of one output between the exported model and the simulation, batch by batch. */
class OutputDiffs {
  private readonly diffs: Float32Array[] = [];
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  private per = 0;
  private dims: number[] = [];
  private worst: OutputParity["worst"] = null;
  private maxAbs = -1;
  private signal = 0;
  private noise = 0;

  add(exported: ort.Tensor, simulated: ort.Tensor, size: number, take: number, offset: number): void {
    const e = exported.data as Float32Array;
    const s = simulated.data as Float32Array;
    const per = e.length / size;
    this.per = per;
    this.dims = [...(exported.dims as readonly number[])];
    const d = new Float32Array(take * per);
    for (let i = 0; i < take * per; i++) {
      const v = Math.abs(e[i]! - s[i]!);
      d[i] = Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
      this.signal += s[i]! * s[i]!;
      this.noise += d[i]! * d[i]!;
      if (d[i]! > this.maxAbs) {
        this.maxAbs = d[i]!;
        this.worst = {
          sample: offset + Math.floor(i / per),
          index: i % per,
          exported: e[i]!,
          simulated: s[i]!,
        };
      }
      if (s[i]! < this.min) this.min = s[i]!;
      if (s[i]! > this.max) this.max = s[i]!;
    }
    this.diffs.push(d);
  }

  result(name: string, known: ReturnType<typeof outputStep>): OutputParity {
    const dq = known?.kind === "dequantize" ? known : undefined;
    const rangeStep = Math.max((this.max - this.min) / 255, Number.MIN_VALUE);
    const main = measure(
      this.diffs,
      this.per,
      this.dims,
      dq ?? { scale: Float32Array.of(rangeStep), axis: -1 },
    );
    const accum = known?.kind === "accumulator" ? measure(this.diffs, this.per, this.dims, known) : null;
    const sum = this.diffs.reduce((t, d) => t + d.reduce((x, y) => x + y, 0), 0);
    const count = this.diffs.reduce((t, d) => t + d.length, 0);
    return {
      name,
      maxAbs: Math.max(0, this.maxAbs),
      meanAbs: sum / Math.max(1, count),
      step: dq ? "dequantize" : "range",
      stepSize: dq ? Math.max(...dq.scale) : rangeStep,
      maxSteps: main.maxSteps,
      withinOneStep: main.withinOneStep,
      sqnrDb: this.noise === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10(this.signal / this.noise),
      accumulator: accum,
      worst: this.worst,
    };
  }
}

/** Why the check failed, naming the output that diverged (empty: passed). */
function parityFailures(
  first: string,
  agreement: number,
  differ: number,
  samples: number,
  outputs: OutputParity[],
  thresholds: ParityThresholds,
): string[] {
  const failures: string[] = [];
  const pct = (v: number) => `${(100 * v).toFixed(3)}%`;
  if (agreement < thresholds.agreement) {
    failures.push(
      `output '${first}': top-1 agreement ${pct(agreement)} is below ${pct(thresholds.agreement)} (${differ} of ${samples} samples differ)`,
    );
  }
  for (const o of outputs) {
    const sqnrPasses = thresholds.sqnrDb !== undefined && o.sqnrDb >= thresholds.sqnrDb;
    if (o.withinOneStep < thresholds.withinOneStep && !sqnrPasses) {
      const w = o.worst!;
      failures.push(
        `output '${o.name}': ${pct(o.withinOneStep)} of values within one quantization step, below ${pct(thresholds.withinOneStep)}; ` +
          `largest difference ${o.maxSteps.toFixed(2)} steps (${o.maxAbs.toPrecision(4)}) at sample ${w.sample}, index ${w.index}: ` +
          `exported ${w.exported}, simulated ${w.simulated}` +
          (thresholds.sqnrDb === undefined
            ? ""
            : `; SQNR against the simulation ${o.sqnrDb.toFixed(1)} dB, below ${thresholds.sqnrDb} dB`),
      );
    }
  }
  return failures;
}

/** Largest difference and share within one step, in steps of `step` (per channel along its axis). */
function measure(
  diffs: Float32Array[],
  per: number,
  dims: number[],
  step: { scale: Float32Array; axis: number },
) {
  const axis = step.axis < 0 ? dims.length - 1 : step.axis;
  const inner = dims.slice(axis + 1).reduce((x, y) => x * y, 1);
  const along = dims[axis] ?? 1;
  let maxSteps = 0;
  let within = 0;
  let count = 0;
  for (const d of diffs) {
    for (let i = 0; i < d.length; i++) {
      const s = step.scale.length === 1 ? step.scale[0]! : step.scale[Math.floor((i % per) / inner) % along]!;
      const v = d[i]! / s;
      if (v > maxSteps) maxSteps = v;
      if (v <= 1) within++;
      count++;
    }
  }
  return { maxSteps, withinOneStep: within / Math.max(1, count) };
}
