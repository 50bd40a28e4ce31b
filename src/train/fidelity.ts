/**
 * Fidelity of a candidate model (int8) to a reference (float) on the same inputs, for data without labels: per
 * output tensor the signal-to-quantization-noise ratio, cosine similarity, and for classifier-shaped outputs
 * ([N, C]) how often both pick the same class. Accumulated over batches in float64.
 *
 * Each measure is an `OutputMetric`, so a task-specific one (a detector's box agreement, a keypoint error) plugs
 * into the same place: it sees one output tensor's reference and candidate values batch by batch, and reports.
 */
import { argmax } from "./argmax.js";

/** One output tensor of one batch: values row-major, dims with the batch first. */
export interface OutputValues {
  data: Float32Array;
  dims: readonly number[];
}

/** A measure of how well the candidate reproduces the reference on one output, accumulated over batches. */
export interface OutputMetric<R = Record<string, number>> {
  /** Short name used as the key of the result ("sqnr", "top1Agreement"). */
  readonly name: string;
  /** Whether this metric applies to an output of these dims (top-1 needs [N, C]). */
  accepts(dims: readonly number[]): boolean;
  add(ref: OutputValues, cand: OutputValues): void;
  result(): R;
}

function checkSame(ref: OutputValues, cand: OutputValues, metric: string): void {
  if (ref.data.length !== cand.data.length || ref.dims.join(",") !== cand.dims.join(",")) {
    throw new Error(
      `${metric}: the candidate's output is [${cand.dims.join(", ")}] but the reference's is [${ref.dims.join(", ")}]`,
    );
  }
}

/**
 * SQNR in dB: 10·log10(Σref² / Σ(ref−cand)²) over every element seen. +Infinity when the candidate is exact,
 * -Infinity when the reference is all zeros and the candidate is not. Also reports the noise as an RMS error.
 */
export class Sqnr implements OutputMetric<{ sqnrDb: number; rmse: number }> {
  readonly name = "sqnr";
  private signal = 0;
  private noise = 0;
  private count = 0;
  accepts(): boolean {
    return true;
  }
  add(ref: OutputValues, cand: OutputValues): void {
    checkSame(ref, cand, this.name);
    const r = ref.data;
    const c = cand.data;
    for (let i = 0; i < r.length; i++) {
      const d = r[i]! - c[i]!;
      this.signal += r[i]! * r[i]!;
      this.noise += d * d;
    }
    this.count += r.length;
  }
  result(): { sqnrDb: number; rmse: number } {
    const rmse = this.count ? Math.sqrt(this.noise / this.count) : Number.NaN;
    if (this.count === 0) return { sqnrDb: Number.NaN, rmse };
    if (this.noise === 0) return { sqnrDb: this.signal === 0 ? Number.NaN : Number.POSITIVE_INFINITY, rmse };
    return { sqnrDb: 10 * Math.log10(this.signal / this.noise), rmse };
  }
}

/**
 * Cosine similarity two ways: of all elements seen as one vector (`cosine`), and the mean over samples of each
 * sample's cosine (`meanSampleCosine`, where one bad sample among many still shows). A zero vector against a
 * non-zero one counts as 0; two zero vectors as 1 (identical).
 */
export class Cosine implements OutputMetric<{ cosine: number; meanSampleCosine: number }> {
  readonly name = "cosine";
  private dot = 0;
  private rr = 0;
  private cc = 0;
  private sampleSum = 0;
  private samples = 0;
  accepts(dims: readonly number[]): boolean {
    return dims.length >= 1 && dims[0]! > 0;
  }
  add(ref: OutputValues, cand: OutputValues): void {
    checkSame(ref, cand, this.name);
    const n = ref.dims[0]!;
    const per = ref.data.length / n;
    for (let s = 0; s < n; s++) {
      let dot = 0;
      let rr = 0;
      let cc = 0;
      for (let i = s * per; i < (s + 1) * per; i++) {
        const r = ref.data[i]!;
        const c = cand.data[i]!;
        dot += r * c;
        rr += r * r;
        cc += c * c;
      }
      this.dot += dot;
      this.rr += rr;
      this.cc += cc;
      this.sampleSum += cosineOf(dot, rr, cc);
      this.samples++;
    }
  }
  result(): { cosine: number; meanSampleCosine: number } {
    if (this.samples === 0) return { cosine: Number.NaN, meanSampleCosine: Number.NaN };
    return { cosine: cosineOf(this.dot, this.rr, this.cc), meanSampleCosine: this.sampleSum / this.samples };
  }
}

function cosineOf(dot: number, rr: number, cc: number): number {
  if (rr === 0 && cc === 0) return 1;
  if (rr === 0 || cc === 0) return 0;
  return dot / Math.sqrt(rr * cc);
}

/** Share of rows of an [N, C] output (C ≥ 2) whose arg-max is the same in both (ties go to the lower index). */
export class Top1Agreement implements OutputMetric<{ top1Agreement: number; rows: number }> {
  readonly name = "top1Agreement";
  private agree = 0;
  private rows = 0;
  accepts(dims: readonly number[]): boolean {
    return dims.length === 2 && dims[1]! >= 2;
  }
  add(ref: OutputValues, cand: OutputValues): void {
    checkSame(ref, cand, this.name);
    if (!this.accepts(ref.dims))
      throw new Error(`${this.name}: needs [N, C] outputs, got [${ref.dims.join(", ")}]`);
    const [n, c] = ref.dims as [number, number];
    for (let i = 0; i < n; i++) if (argmax(ref.data, i * c, c) === argmax(cand.data, i * c, c)) this.agree++;
    this.rows += n;
  }
  result(): { top1Agreement: number; rows: number } {
    return { top1Agreement: this.rows ? this.agree / this.rows : Number.NaN, rows: this.rows };
  }
}

export type MetricFactory = (output: string, dims: readonly number[]) => OutputMetric[];

/** SQNR and cosine on every output, top-1 agreement on classifier-shaped ones. */
export const defaultFidelityMetrics: MetricFactory = (_output, dims) =>
  [new Sqnr(), new Cosine(), new Top1Agreement()].filter((m) => m.accepts(dims));

/**
 * Fidelity over named outputs, batch by batch. The metrics for an output are chosen (by `factory`) from its dims
 * the first time it is seen; `result()` merges each output's metric results into one record per output.
 */
export class FidelityMeter {
  private readonly metrics = new Map<string, OutputMetric[]>();

  constructor(private readonly factory: MetricFactory = defaultFidelityMetrics) {}

  add(ref: Record<string, OutputValues>, cand: Record<string, OutputValues>): void {
    for (const [name, r] of Object.entries(ref)) {
      const c = cand[name];
      if (!c)
        throw new Error(
          `fidelity: the candidate has no output "${name}" (it has ${Object.keys(cand).join(", ")})`,
        );
      let ms = this.metrics.get(name);
      if (!ms) {
        ms = this.factory(name, r.dims);
        this.metrics.set(name, ms);
      }
      for (const m of ms) m.add(r, c);
    }
  }

  result(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [name, ms] of this.metrics) {
      out[name] = Object.assign({}, ...ms.map((m) => m.result() as Record<string, number>));
    }
    return out;
  }
}
