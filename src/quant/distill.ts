/**
 * QAT by distillation: the float model is the teacher, its fake-quantized form the student, trained by qat's own
 * training step on a loss that asks the student to reproduce the teacher's outputs (src/train/distill-loss.ts). No
 * labels are needed, so any model fine-tunes this way — classifiers, and detectors, keypoint or segmentation models
 * whose training loss is not at hand. With labels, cross-entropy can be added.
 */
import type { Dataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { NetModel } from "../nn/model.js";
import { modelOf } from "../onnx/codec.js";
import { cloneGraph, type Graph } from "../onnx/ir.js";
import { type Tensor, toFloat32 } from "../onnx/tensor.js";
import { fromOrt, openSession, toOrt } from "../runtime/session.js";
import type { Checkpoint } from "../train/checkpoint.js";
import { type DistillKind, type DistillSegment, distillLoss } from "../train/distill-loss.js";
import type { OptimizerSpec } from "../train/optimizers.js";
import { type ScheduleSpec, schedule } from "../train/schedules.js";
import { TrainingRunner } from "../train/step.js";
import { type QatSettings, QatTraining } from "./qat-train.js";

/** One output of the model as it lies in the training graph's flat [batch, N] value (src/nn/import/outputs.ts). */
export interface OutputSegment {
  name: string;
  offset: number;
  size: number;
}

export interface DistillOptions {
  /** A calibrated QAT setup to start from (e.g. the PTQ stage's); else one is created from `settings`. */
  qat?: QatTraining;
  /**
   * qconfig preset and QAT settings when `qat` is not given (default: preset ort-cpu; freezeBnAfter 1, so BN
   * statistics are frozen and folded from the second step: fine-tuning a calibrated model, not training one).
   */
  settings?: QatSettings;
  /** The outputs in the model's flat output (an import with outputs "all": report.outputs). Default: one output. */
  outputs?: OutputSegment[];
  /** Loss per output name (default: softmax for a single [batch, classes] output, regression otherwise). */
  kinds?: Record<string, DistillKind>;
  /** softmax: values per distribution, per output name (default: the whole output). */
  classes?: Record<string, number>;
  /** Softmax/sigmoid temperature (default 1: the student matches the teacher's own probabilities). */
  temperature?: number;
  /** Weigh each regression output by 1 / the teacher's variance on the first batch (default true). */
  normalize?: boolean;
  /** Add this weight × cross-entropy against the dataset's labels on the softmax output (default: no labels). */
  labelWeight?: number;
  /** Optimizer steps (default 1000) of `batchSize` samples (default 32). */
  steps?: number;
  batchSize?: number;
  /** Adam (default) with this learning rate (default 1e-4), decayed by a cosine over the steps. */
  lr?: number;
  optimizer?: OptimizerSpec;
  seed?: number;
  threads?: number;
  /** Called every `every` steps (default 50) with the mean loss since the last call. */
  onProgress?: (p: { step: number; loss: number }) => void;
  every?: number;
}

export interface DistillResult {
  /** The trained fake-quantized model: its eval graph holds the trained weights and scales (Q/DQ, BN folded). */
  net: NetModel;
  qat: QatTraining;
  /** Trained parameters (weights, scales) and buffers, by name. */
  values: Map<string, Tensor>;
  segments: DistillSegment[];
  /** Mean loss per `every` steps. */
  history: { step: number; loss: number }[];
  steps: number;
  seconds: number;
  /** What the export path reads (src/export/source.ts): the eval graph with the trained values and meta.quant. */
  checkpoint: Checkpoint;
}

export class DistillError extends Error {
  override name = "DistillError";
}

/**
 * Fine-tune the fake-quantized `float` model to reproduce the float model's outputs on `data` (labels unused unless
 * `labelWeight` is given). The teacher runs the float eval graph on each batch; the student trains with the
 * distillation loss through the lowered QAT training step (STE/LSQ gradients, learned scales).
 */
export async function distill(
  float: NetModel,
  data: Dataset,
  opts: DistillOptions = {},
): Promise<DistillResult> {
  const t0 = performance.now();
  const batchSize = opts.batchSize ?? 32;
  const steps = opts.steps ?? 1000;
  if (!(steps >= 1 && Number.isInteger(steps)))
    throw new DistillError(`steps must be a whole number ≥ 1, got ${steps}`);
  if (data.length < 1) throw new DistillError(`the distillation dataset '${data.name}' is empty`);
  const qat =
    opts.qat ??
    (await QatTraining.create(
      float,
      { freezeBnAfter: float.buffers.length ? 1 : 0, ...(opts.settings ?? { preset: "ort-cpu" }) },
      data,
      { seed: opts.seed, threads: opts.threads },
    ));
  const teacher = await Teacher.open(float, opts.threads);
  const loader = new DataLoader(data, { batchSize, seed: opts.seed ?? 0, shuffle: true });
  const lrAt = schedule(cosine(opts.lr ?? 1e-4, steps));
  const optimizer = opts.optimizer ?? { kind: "adam" };
  const history: { step: number; loss: number }[] = [];
  const every = opts.every ?? 50;
  let runner: TrainingRunner | undefined;
  let segments: DistillSegment[] = [];
  try {
    let step = 0;
    let sum = 0;
    let count = 0;
    for (let epoch = 0; step < steps; epoch++) {
      for await (const b of loader.epoch(epoch)) {
        const x: Tensor = { dtype: "float32", dims: [b.size, ...float.inputShape], data: b.x };
        const out = await teacher.run(x);
        if (!runner) {
          segments = segmentsFor(teacher.width, out, opts);
          runner = await TrainingRunner.create(
            qat.trainingStep(0, { loss: lossOf(teacher.width, segments, opts), optimizer }),
            { threads: opts.threads, ...qat.sessionOptions },
          );
        } else if (qat.switchesAt(step)) {
          // a new QAT phase (BN statistics frozen): the same carried values in the next phase's graph
          const next = await TrainingRunner.create(
            qat.trainingStep(step, { loss: lossOf(teacher.width, segments, opts), optimizer }),
            { threads: opts.threads, ...qat.sessionOptions },
          );
          const carried = new Set(next.step.carried.map((c) => c.name));
          next.load(new Map([...runner.values()].filter(([k]) => carried.has(k))), step);
          await runner.release();
          runner = next;
        }
        const r = await runner.run(x, targets(out, b.y, opts.labelWeight !== undefined), lrAt(step));
        if (!Number.isFinite(r.loss))
          throw new DistillError(
            `the distillation loss became ${r.loss} at step ${step + 1}: lower the learning rate`,
          );
        sum += r.loss;
        count++;
        step++;
        if (step % every === 0 || step === steps) {
          history.push({ step, loss: sum / count });
          opts.onProgress?.(history[history.length - 1]!);
          sum = 0;
          count = 0;
        }
        if (step >= steps) break;
      }
    }
    const values = new Map([...runner!.values("param"), ...runner!.values("buffer")]);
    const net = trainedNet(qat.netAt(steps), values);
    return {
      net,
      qat,
      values,
      segments,
      history,
      steps,
      seconds: (performance.now() - t0) / 1000,
      checkpoint: {
        graph: net.eval,
        state: new Map(),
        meta: { distilled: { steps, segments }, quant: qat.meta() },
      },
    };
  } finally {
    await runner?.release();
    await teacher.release();
  }
}

function cosine(lr: number, steps: number): ScheduleSpec {
  return { kind: "cosine", lr, tMax: steps };
}

function lossOf(width: number, segments: DistillSegment[], opts: DistillOptions) {
  const labelled = segments.findIndex((s) => s.kind === "softmax" && (s.classes ?? s.size) === s.size);
  if (opts.labelWeight !== undefined && labelled < 0)
    throw new DistillError(
      "labels were given, but no output is a softmax over classes to add cross-entropy to",
    );
  return distillLoss({
    size: width,
    segments,
    labels: opts.labelWeight !== undefined ? { segment: labelled, weight: opts.labelWeight } : undefined,
  });
}

/** The loss segments: the caller's outputs and kinds, or the whole output as one classifier / regression. */
function segmentsFor(width: number, first: Tensor, opts: DistillOptions): DistillSegment[] {
  const outs = opts.outputs ?? [{ name: "output", offset: 0, size: width }];
  const total = outs.reduce((a, o) => Math.max(a, o.offset + o.size), 0);
  if (total > width)
    throw new DistillError(
      `the outputs given cover ${total} values, but the model's output has ${width} per sample`,
    );
  const data = toFloat32(first);
  const rows = first.dims[0]!;
  return outs.map((o) => {
    const kind = opts.kinds?.[o.name] ?? (outs.length === 1 && !opts.outputs ? "softmax" : "regression");
    const seg: DistillSegment = { name: o.name, offset: o.offset, size: o.size, kind };
    if (kind === "softmax") seg.classes = opts.classes?.[o.name] ?? o.size;
    if (kind !== "regression") seg.temperature = opts.temperature ?? 1;
    if (kind === "regression" && opts.normalize !== false) {
      // 1 / the teacher's variance over the first batch, so a segment in pixels weighs as one in [0, 1]
      let s = 0;
      let s2 = 0;
      for (let r = 0; r < rows; r++)
        for (let i = 0; i < o.size; i++) {
          const v = data[r * width + o.offset + i]!;
          s += v;
          s2 += v * v;
        }
      const n = rows * o.size;
      const variance = s2 / n - (s / n) ** 2;
      seg.scale = variance > 1e-12 ? 1 / variance : 1;
    }
    return seg;
  });
}

/** The teacher's outputs as the step's targets, with the labels as one more column when they are used. */
function targets(out: Tensor, labels: BigInt64Array, withLabels: boolean): Tensor {
  if (!withLabels) return out;
  const [n, w] = out.dims as [number, number];
  const src = toFloat32(out);
  const data = new Float32Array(n * (w + 1));
  for (let r = 0; r < n; r++) {
    data.set(src.subarray(r * w, (r + 1) * w), r * (w + 1));
    data[r * (w + 1) + w] = Number(labels[r]!);
  }
  return { dtype: "float32", dims: [n, w + 1], data };
}

/** The fake-quantized model with the trained values as the initializers of both graphs. */
function trainedNet(net: NetModel, values: Map<string, Tensor>): NetModel {
  const put = (g: Graph) => {
    const c = cloneGraph(g);
    for (const [k, t] of values) if (c.initializers.has(k)) c.initializers.set(k, t);
    return c;
  };
  return { ...net, train: put(net.train), eval: put(net.eval) };
}

/**
 * The float model's eval graph computing what the training graph's output holds, per sample as one row: the
 * output itself when the eval graph has it (a classifier's logits, a trailing Softmax left out as in training),
 * else every eval output flattened per sample and concatenated in graph-output order, as the importer's flat output.
 */
class Teacher {
  private constructor(
    private readonly session: Awaited<ReturnType<typeof openSession>>,
    private readonly input: string,
    private readonly outputs: string[],
    readonly width: number,
  ) {}

  static async open(net: NetModel, threads?: number): Promise<Teacher> {
    const g = cloneGraph(net.eval);
    const produced = g.nodes.some((n) => n.outputs.includes(net.output));
    const outputs = produced ? [net.output] : g.outputs.map((o) => o.name);
    if (produced && !g.outputs.some((o) => o.name === net.output))
      g.outputs.push({ name: net.output, dtype: "float32" });
    const session = await openSession(modelOf(g), { threads });
    const probe: Tensor = {
      dtype: "float32",
      dims: [1, ...net.inputShape],
      data: new Float32Array(net.inputShape.reduce((a, b) => a * b, 1)),
    };
    const t = new Teacher(session, net.input, outputs, 0);
    const width = (await t.run(probe)).dims[1]!;
    return new Teacher(session, net.input, outputs, width);
  }

  async run(x: Tensor): Promise<Tensor> {
    const res = await this.session.run({ [this.input]: toOrt(x) }, this.outputs);
    const parts = this.outputs.map((o) => fromOrt(res[o]!));
    const n = x.dims[0]!;
    if (parts.length === 1 && parts[0]!.dims.length === 2) return parts[0]!;
    const per = parts.map((p) => p.dims.slice(1).reduce((a, b) => a * b, 1));
    const width = per.reduce((a, b) => a + b, 0);
    const data = new Float32Array(n * width);
    for (let r = 0; r < n; r++) {
      let at = r * width;
      parts.forEach((p, i) => {
        data.set(toFloat32(p).subarray(r * per[i]!, (r + 1) * per[i]!), at);
        at += per[i]!;
      });
    }
    return { dtype: "float32", dims: [n, width], data };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
