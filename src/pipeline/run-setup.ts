/**
 * What a training run starts from: its datasets (train, test, the split it fits and the one it evaluates on) and
 * its model (a zoo model with input normalisation, or an imported float ONNX model), checked against each other.
 */
import { existsSync, statSync } from "node:fs";
import { augment } from "../data/augment.js";
import { type Dataset, withClasses } from "../data/dataset.js";
import { openDataset } from "../data/open.js";
import { splitValidation } from "../data/split.js";
import { type ImportReport, importModel } from "../nn/import/index.js";
import { loadStateDict, type NetModel } from "../nn/model.js";
import { prependNormalization } from "../nn/normalize.js";
import { zooModel } from "../nn/zoo.js";
import { loadModel } from "../onnx/codec.js";
import type { Tensor } from "../onnx/tensor.js";
import { RunFolder } from "../train/run-folder.js";
import { ConfigError, type TrainConfig } from "./config.js";

export interface RunData {
  train: Dataset;
  test: Dataset;
  /** What the optimizer sees: the training set less a validation split, augmented. */
  fit: Dataset;
  /** What each epoch is evaluated on: the validation split, else the test set. */
  eval: Dataset;
  /** Per-channel mean and std of the fit set before augmentation (the zoo model's input normalisation). */
  stats: { mean: number[]; std: number[] };
  /** The data is one file (CSV, NPZ, …) that knows its classes only from its labels. */
  oneFile: boolean;
}

/** The run's datasets; a one-file dataset holds out a seeded 10% as its test set. */
export async function openRunData(cfg: TrainConfig, log: (m: string) => void): Promise<RunData> {
  let train: Dataset = await openDataset(cfg.data, { split: "train", dataDir: cfg.dataDir });
  let test: Dataset;
  const oneFile = existsSync(cfg.data) && statSync(cfg.data).isFile();
  if (oneFile) {
    if (train.length < 20)
      throw new ConfigError(
        `${cfg.data} has ${train.length} samples: too few to train and hold out a test set`,
      );
    const s = splitValidation(train, { fraction: 0.1, seed: cfg.seed });
    log(`${cfg.data} has no separate test split: ${s.val.length} samples (10%) are held out as the test set`);
    train = s.train;
    test = s.val;
  } else test = await openDataset(cfg.data, { split: "test", dataDir: cfg.dataDir });
  let fit: Dataset = train;
  let evalSet: Dataset = test;
  if (cfg.valFraction > 0) {
    const s = splitValidation(train, { fraction: cfg.valFraction, seed: cfg.seed });
    fit = s.train;
    evalSet = s.val;
  }
  const stats = fit.stats();
  if (cfg.augment.cropPadding > 0 || cfg.augment.flip) {
    fit = augment(fit, { seed: cfg.seed, cropPadding: cfg.augment.cropPadding, flip: cfg.augment.flip });
  }
  return { train, test, fit, eval: evalSet, stats, oneFile };
}

/**
 * The run's model: the imported file or the zoo model, checked against the data. An imported model's classes
 * become the datasets' classes (returned as new data); a zoo model gets the fit set's input normalisation.
 */
export function buildRunModel(
  cfg: TrainConfig,
  data: RunData,
): { net: NetModel; imported?: ImportReport; data: RunData } {
  const imported = cfg.from ? importModel(cfg.from, { input: cfg.input, seed: cfg.seed }) : undefined;
  const net =
    imported?.net ??
    zooModel(cfg.model, {
      seed: cfg.seed,
      classes: data.train.numClasses,
      inputShape: [...data.train.inputShape],
    });
  const what = cfg.from ?? `model ${cfg.model}`;
  if (net.inputShape.join(",") !== data.train.inputShape.join(",")) {
    throw new ConfigError(
      `${what} takes [${net.inputShape}] inputs but dataset ${cfg.data} has [${data.train.inputShape}] samples`,
    );
  }
  if (!imported) {
    prependNormalization(net, data.stats.mean, data.stats.std);
    return { net, data };
  }
  // labels must be classes of the model; a dataset that knows its classes only from its labels may use fewer
  const classes = imported.report.output.classes;
  if (data.train.numClasses > classes || (!data.oneFile && data.train.numClasses !== classes)) {
    throw new ConfigError(
      `${what} has ${classes} classes but dataset ${cfg.data} has ${data.train.numClasses}`,
    );
  }
  // an imported model keeps the input convention it was trained with (cfg.input): no normalisation in front
  const c = (d: Dataset) => withClasses(d, classes);
  return {
    net,
    imported: imported.report,
    data: { ...data, train: c(data.train), test: c(data.test), fit: c(data.fit), eval: c(data.eval) },
  };
}

/**
 * No model named but `init` is a run folder: train the model that run trained (its zoo model, or its imported
 * file with the same input convention), as `--init runs/resnet8 --qat` means.
 */
export function inheritModel(settings: Partial<TrainConfig>): Partial<TrainConfig> {
  if (settings.model !== undefined || settings.from !== undefined || !settings.init) return settings;
  const folder = new RunFolder(settings.init);
  if (!folder.has("config")) return settings;
  const run = folder.readConfig() as Partial<TrainConfig>;
  return { ...settings, model: run.model, from: run.from, input: settings.input ?? run.input };
}

/**
 * Load parameters and buffers into `net` from a model (model.onnx, checkpoint.onnx or a run folder holding them);
 * returns all its initializers (QAT starts from the scales of a calibrated model).
 */
export function loadInit(net: NetModel, path: string): Map<string, Tensor> {
  const file = new RunFolder(path).weightsFile() ?? path;
  if (!existsSync(file)) throw new ConfigError(`--init ${path}: no such model file or run folder`);
  const inits = loadModel(file).graph.initializers;
  const values = new Map<string, Tensor>();
  for (const k of [...net.params, ...net.buffers]) {
    const t = inits.get(k);
    if (t) values.set(k, t);
  }
  if (values.size === 0)
    throw new ConfigError(`--init ${file}: it holds none of the parameters of model ${net.name}`);
  const missing = net.params.filter((k) => !values.has(k));
  if (missing.length)
    throw new ConfigError(
      `--init ${file}: parameters ${missing.join(", ")} of model ${net.name} are missing`,
    );
  loadStateDict(net, values);
  return inits;
}
