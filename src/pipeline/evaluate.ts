/** `qat eval` as a library function: a model file, a run folder's model, or a float model imported for training. */
import { existsSync, statSync } from "node:fs";
import { openDataset } from "../data/open.js";
import { importModel } from "../nn/import/index.js";
import { loadModel, modelOf } from "../onnx/codec.js";
import { normalizeQdqScalars } from "../onnx/qdq-scalars.js";
import { EvalError, evaluateModel } from "../train/evaluate.js";
import type { ClassificationMetrics } from "../train/metrics.js";
import { RunFolder } from "../train/run-folder.js";
import type { TrainConfig } from "./config.js";

export interface EvaluateFileOptions {
  /** An .onnx file or a run folder (its model.onnx). */
  model: string;
  /** Import `model` first as `qat train --from` does (dynamic batch, float32, the input convention in front). */
  imported?: boolean;
  /** Input convention of an imported model. */
  input?: TrainConfig["input"];
  /** A named dataset (mnist, fashion-mnist, cifar10) or a path. */
  data: string;
  dataDir?: string;
  split?: "train" | "test";
  batchSize?: number;
  /** At most this many samples (0: all). */
  limit?: number;
  threads?: number;
}

export interface EvaluateFileResult {
  /** The model file evaluated. */
  file: string;
  dataset: string;
  classNames: readonly string[];
  metrics: ClassificationMetrics;
}

/** Accuracy, top-5, per-class accuracy and confusion of a model file (or run folder) on a dataset. */
export async function evaluateFile(opts: EvaluateFileOptions): Promise<EvaluateFileResult> {
  if (opts.input && !opts.imported)
    throw new EvalError("an input convention (scale, mean, std) applies to a model imported with --from");
  const given = opts.model;
  const file =
    existsSync(given) && statSync(given).isDirectory() ? new RunFolder(given).path("model") : given;
  if (!existsSync(file)) throw new EvalError(`${file} not found: give an .onnx file or a run folder`);
  const model = opts.imported ? modelOf(importModel(file, { input: opts.input }).net.eval) : loadModel(file);
  // foreign int8 exports (PyTorch) carry [1]-shaped Q/DQ scales that ORT's fusion refuses
  if (!opts.imported) normalizeQdqScalars(model);
  const ds = await openDataset(opts.data, { dataDir: opts.dataDir, split: opts.split ?? "test" });
  const metrics = await evaluateModel(model, ds, {
    batchSize: opts.batchSize,
    limit: opts.limit,
    threads: opts.threads || undefined,
  });
  const classNames = ds.classNames ?? Array.from({ length: ds.numClasses }, (_, i) => String(i));
  return { file, dataset: ds.name, classNames, metrics };
}
