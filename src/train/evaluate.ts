/**
 * The one evaluation core: batches of a dataset, in order, through a model (an ORT session, the eval graph of a
 * training run, or anything that turns a batch into logits), arg-max, and the metrics of ClassificationMetrics
 * (accuracy, top-5, per class, confusion). The trainer, `qat eval`, sensitivity, calibration and the parity check
 * all read their batches from `evalBatches` and score them here.
 */
import type * as ort from "onnxruntime-node";
import type { Dataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { NetModel } from "../nn/model.js";
import type { Model, ValueInfo } from "../onnx/ir.js";
import type { Tensor } from "../onnx/tensor.js";
import { openSession, type SessionOptions, toOrt } from "../runtime/session.js";
import { ClassificationMetrics } from "./metrics.js";
import { EvalRunner } from "./step.js";

export { argmax, argmaxRows } from "./argmax.js";

export class EvalError extends Error {
  override name = "EvalError";
  readonly exitCode = 2;
}

export interface BatchOptions {
  /** Samples per batch (default 64). */
  batchSize?: number;
  /** At most this many samples (0 or absent: all). */
  limit?: number;
  /** The model's batch dimension is fixed at this size: a short last batch is padded with zeros to it. */
  fixedBatch?: number;
  /** Dimensions of one sample as the model takes it (default: the dataset's input shape). */
  sampleDims?: readonly number[];
}

export interface EvalBatch {
  /** The batch as a float32 tensor [rows, ...sample]; rows = fixedBatch when padded, else size. */
  x: Tensor;
  /** Labels of the batch's samples. */
  labels: ArrayLike<bigint | number>;
  /** Samples in the batch. */
  size: number;
  /** Of them, the ones inside the limit: score only these. */
  take: number;
  /** Index of the batch's first sample in the dataset. */
  offset: number;
}

/** The dataset in order, batch by batch, up to the limit. */
export async function* evalBatches(ds: Dataset, opts: BatchOptions = {}): AsyncGenerator<EvalBatch> {
  const fixed = opts.fixedBatch;
  const batchSize = fixed ?? opts.batchSize ?? 64;
  const dims = [...(opts.sampleDims ?? ds.inputShape)];
  const n = opts.limit ? Math.min(opts.limit, ds.length) : ds.length;
  let done = 0;
  if (n === 0) return;
  const loader = new DataLoader(ds, { batchSize, shuffle: false });
  for await (const b of loader.epoch(0)) {
    let data = b.x;
    if (fixed !== undefined && b.size < fixed) {
      data = new Float32Array(fixed * (b.x.length / b.size));
      data.set(b.x);
    }
    const take = Math.min(b.size, n - done);
    const x: Tensor = { dtype: "float32", dims: [fixed ?? b.size, ...dims], data };
    yield { x, labels: b.y, size: b.size, take, offset: done };
    done += take;
    if (done >= n) return;
  }
}

/** Logits ([rows, classes]) of one batch. */
export type LogitsOf = (x: Tensor) => Promise<{ dims: readonly number[]; data: unknown }>;

/**
 * Metrics of a classifier on a dataset: every batch through `logitsOf`, scored against its labels. `classes`
 * (default: from the first batch's logits) must be at least the dataset's classes.
 */
export async function classify(
  ds: Dataset,
  logitsOf: LogitsOf,
  opts: BatchOptions & { classes?: number; what?: string } = {},
): Promise<ClassificationMetrics> {
  let metrics = opts.classes === undefined ? undefined : new ClassificationMetrics(opts.classes);
  for await (const b of evalBatches(ds, opts)) {
    const logits = await logitsOf(b.x);
    if (!metrics) {
      const classes = logits.dims.at(-1)!;
      // a dataset that knows its classes only from its labels may use fewer than the model has
      if (classes < ds.numClasses) {
        throw new EvalError(
          `${opts.what ?? "the model's output"} has ${classes} classes but dataset '${ds.name}' has ${ds.numClasses}`,
        );
      }
      metrics = new ClassificationMetrics(classes);
    }
    metrics.add(logits.data as Float32Array, b.labels, b.take);
  }
  return metrics ?? new ClassificationMetrics(ds.numClasses);
}

export interface EvaluateOptions extends SessionOptions {
  batchSize?: number;
  /** At most this many samples (0: all). */
  limit?: number;
  /** Output to read logits from (default: the first). */
  output?: string;
}

/** The model's first graph input that is not an initializer: it takes the samples. */
export function sampleInput(model: Model): ValueInfo {
  const g = model.graph;
  const input = g.inputs.find((i) => !g.initializers.has(i.name));
  if (!input) throw new EvalError("the model has no input that is not an initializer");
  return input;
}

/**
 * How a model takes a dataset's samples: the dimensions of one sample as its input declares them (a flat input
 * takes flattened samples) and its fixed batch size, if it has one. Fails when they do not fit.
 */
export function inputLayout(input: ValueInfo, ds: Dataset): { sampleDims: number[]; fixedBatch?: number } {
  const shape = input.shape;
  const sample = ds.inputShape;
  if (!shape || shape.length === 0) return { sampleDims: [...sample] };
  const rest = shape.slice(1);
  const fits =
    rest.length === sample.length && rest.every((d, i) => typeof d !== "number" || d === sample[i]);
  const flatFits =
    rest.every((d) => typeof d === "number") &&
    rest.reduce<number>((a, d) => a * (d as number), 1) === sample.reduce((a, d) => a * d, 1);
  if (!fits && !flatFits) {
    throw new EvalError(
      `model input '${input.name}' is [${shape}] but the dataset '${ds.name}' has samples of [${sample}]`,
    );
  }
  return {
    sampleDims: rest.map((d, i) => (typeof d === "number" ? d : sample[i]!)),
    fixedBatch: typeof shape[0] === "number" ? shape[0] : undefined,
  };
}

/**
 * Accuracy, top-5, per-class accuracy and the confusion matrix of any ONNX classifier on a dataset. The model's first
 * graph input (not an initializer) takes the dataset's samples; a model whose batch dimension is fixed runs at that
 * batch size.
 */
export async function evaluateModel(
  model: Model,
  ds: Dataset,
  opts: EvaluateOptions = {},
): Promise<ClassificationMetrics> {
  const input = sampleInput(model);
  const layout = inputLayout(input, ds);
  const session = await openSession(model, opts);
  try {
    const output = opts.output ?? session.outputNames[0]!;
    const logitsOf: LogitsOf = async (x) =>
      (await session.run({ [input.name]: toOrt(x) }, [output]))[output]!;
    return await classify(ds, logitsOf, {
      ...layout,
      batchSize: opts.batchSize,
      limit: opts.limit,
      what: `output '${output}'`,
    });
  } finally {
    await session.release();
  }
}

/** Accuracy, top-5 and the confusion matrix of a training run's eval graph (with these weights) on a dataset. */
export async function evaluate(
  evaluator: EvalRunner,
  ds: Dataset,
  weights: Map<string, ort.Tensor | Tensor> | undefined,
  batchSize: number,
  limit = 0,
): Promise<ClassificationMetrics> {
  const logitsOf: LogitsOf = async (x) => (await evaluator.run(x, { weights })).logits;
  return classify(ds, logitsOf, { batchSize, limit, classes: ds.numClasses });
}

/**
 * Accuracy of a model built in code (a float network or its fake-quantized form) on a dataset, with its own weights:
 * one eval session, opened at ORT optimisation "basic" as QAT runs it, and released.
 */
export async function evaluateNet(
  net: NetModel,
  ds: Dataset,
  opts: { batchSize?: number; limit?: number; threads?: number } = {},
): Promise<ClassificationMetrics> {
  const runner = await EvalRunner.create(net, { threads: opts.threads, optimization: "basic" });
  try {
    return await evaluate(runner, ds, undefined, opts.batchSize ?? 256, opts.limit ?? 0);
  } finally {
    await runner.release();
  }
}
