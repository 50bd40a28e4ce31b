/**
 * The held-out measurement every stage uses: the float model's outputs on the held-out samples, computed once,
 * and any candidate graph (float or fake-quantized) run on the same batches and scored by the run's metric.
 */
import type { Dataset } from "../../data/dataset.js";
import { modelOf } from "../../onnx/codec.js";
import type { Graph } from "../../onnx/ir.js";
import { openSession, toOrt } from "../../runtime/session.js";
import { type EvalBatch, evalBatches } from "../../train/evaluate.js";
import type { OutputValues } from "../../train/fidelity.js";
import type { MetricValue, QuantMetric } from "./metric.js";

type Outputs = Record<string, OutputValues>;

export class HeldOutEvaluator {
  private batches: { labels: number[]; take: number; x: EvalBatch["x"]; ref: Outputs }[] = [];

  private constructor(
    readonly metric: QuantMetric,
    private readonly input: string,
    private readonly threads?: number,
  ) {}

  /** Run the float eval graph over the held-out samples once and keep its outputs (and the inputs). */
  static async create(
    floatGraph: Graph,
    input: string,
    heldOut: Dataset,
    metric: QuantMetric,
    threads?: number,
  ): Promise<HeldOutEvaluator> {
    const ev = new HeldOutEvaluator(metric, input, threads);
    await ev.forEach(floatGraph, heldOut, (b, out) => {
      ev.batches.push({ labels: b.labels as number[], take: b.take, x: b.x, ref: out });
    });
    return ev;
  }

  /** The metric of a graph with the same input and outputs as the float model. */
  async measure(g: Graph): Promise<MetricValue> {
    const acc = this.metric.start();
    const session = await openSession(modelOf(g), { threads: this.threads, optimization: "basic" });
    try {
      for (const b of this.batches) {
        const candidate = await this.outputs(session, b.x);
        acc.add({ labels: b.labels, take: b.take, reference: b.ref, candidate });
      }
    } finally {
      await session.release();
    }
    return acc.result();
  }

  /** Held-out samples measured. */
  get samples(): number {
    return this.batches.reduce((a, b) => a + b.take, 0);
  }

  private async forEach(g: Graph, ds: Dataset, each: (b: EvalBatch, out: Outputs) => void): Promise<void> {
    const session = await openSession(modelOf(g), { threads: this.threads, optimization: "basic" });
    try {
      for await (const b of evalBatches(ds, { batchSize: 64 })) {
        // the loader reuses its buffers: keep a copy of the batch
        const x = { ...b.x, data: (b.x.data as Float32Array).slice() };
        each(
          { ...b, x, labels: Array.from(b.labels as ArrayLike<number>, Number) },
          await this.outputs(session, x),
        );
      }
    } finally {
      await session.release();
    }
  }

  private async outputs(
    session: Awaited<ReturnType<typeof openSession>>,
    x: EvalBatch["x"],
  ): Promise<Outputs> {
    const res = await session.run({ [this.input]: toOrt(x) });
    const out: Outputs = {};
    for (const name of session.outputNames) {
      const t = res[name]!;
      out[name] = { data: t.data as Float32Array, dims: t.dims };
    }
    return out;
  }
}
