import type * as ort from "onnxruntime-node";
import type { Dataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { Model } from "../onnx/ir.js";
import type { Tensor } from "../onnx/tensor.js";
import { openSession, type SessionOptions, toOrt } from "../runtime/session.js";
import { ClassificationMetrics } from "./metrics.js";
import type { EvalRunner } from "./step.js";

export class EvalError extends Error {
  override name = "EvalError";
  readonly exitCode = 2;
}

export interface EvaluateOptions extends SessionOptions {
  batchSize?: number;
  /** At most this many samples (0: all). */
  limit?: number;
  /** Output to read logits from (default: the first). */
  output?: string;
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
  const g = model.graph;
  const input = g.inputs.find((i) => !g.initializers.has(i.name));
  if (!input) throw new EvalError("the model has no input that is not an initializer");
  const shape = input.shape;
  const sample = ds.inputShape;
  if (shape && shape.length > 0) {
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
  }
  const fixed = typeof shape?.[0] === "number" ? (shape[0] as number) : undefined;
  const batchSize = fixed ?? opts.batchSize ?? 64;
  const session = await openSession(model, opts);
  try {
    const output = opts.output ?? session.outputNames[0]!;
    const dims =
      shape && shape.length > 0
        ? shape.slice(1).map((d, i) => (typeof d === "number" ? d : sample[i]!))
        : sample;
    let metrics: ClassificationMetrics | undefined;
    const loader = new DataLoader(ds, { batchSize, shuffle: false });
    const n = opts.limit ? Math.min(opts.limit, ds.length) : ds.length;
    let done = 0;
    for await (const b of loader.epoch(0)) {
      let x = b.x;
      if (fixed !== undefined && b.size < fixed) {
        x = new Float32Array(fixed * (b.x.length / b.size));
        x.set(b.x);
      }
      const feeds: Record<string, ort.Tensor> = {
        [input.name]: toOrt({ dtype: "float32", dims: [fixed ?? b.size, ...(dims as number[])], data: x }),
      };
      const res = await session.run(feeds, [output]);
      const logits = res[output]!;
      const classes = logits.dims.at(-1)!;
      // a dataset that knows its classes only from its labels may use fewer than the model has
      if (classes < ds.numClasses) {
        throw new EvalError(
          `output '${output}' has ${classes} classes but dataset '${ds.name}' has ${ds.numClasses}`,
        );
      }
      metrics ??= new ClassificationMetrics(classes);
      const take = Math.min(b.size, n - done);
      metrics.add(logits.data as Float32Array, b.y, take);
      done += take;
      if (done >= n) break;
    }
    return metrics ?? new ClassificationMetrics(ds.numClasses);
  } finally {
    await session.release();
  }
}

/** Accuracy, top-5 and the confusion matrix of the eval graph on a dataset, in batches. */
export async function evaluate(
  evaluator: EvalRunner,
  ds: Dataset,
  weights: Map<string, ort.Tensor | Tensor> | undefined,
  batchSize: number,
  limit = 0,
): Promise<ClassificationMetrics> {
  const metrics = new ClassificationMetrics(ds.numClasses);
  const loader = new DataLoader(ds, { batchSize, shuffle: false });
  const n = limit > 0 ? Math.min(limit, ds.length) : ds.length;
  let done = 0;
  for await (const b of loader.epoch(0)) {
    const take = Math.min(b.size, n - done);
    const x: Tensor = { dtype: "float32", dims: [b.size, ...ds.inputShape], data: b.x };
    const { logits } = await evaluator.run(x, { weights });
    metrics.add(logits.data as Float32Array, b.y, take);
    done += take;
    if (done >= n) break;
  }
  return metrics;
}
