import type { Dataset } from "../data/dataset.js";
import { loadStateDict, type NetModel } from "../nn/model.js";
import { loadModel } from "../onnx/codec.js";
import type { Tensor } from "../onnx/tensor.js";
import { RunFolder } from "../train/run-folder.js";
import { ConfigError, resolveConfig, type TrainConfig } from "./config.js";
import { buildRunModel, openRunData } from "./run-setup.js";

export interface FloatRun {
  net: NetModel;
  config: TrainConfig;
  /** The training set (calibration data) and the test set, as the run used them. */
  train: Dataset;
  test: Dataset;
  /** Every initializer of the run's model file (float weights, and scales when it was calibrated or trained). */
  initializers: Map<string, Tensor>;
}

/**
 * A trained run folder (from `qat train`) as a model with its weights and its datasets: the model the run
 * trained (a zoo model with the input normalisation of its training data, or its imported `--from` model with its
 * input convention), parameters and buffers from model.onnx (or checkpoint.onnx when training did not finish).
 */
export async function openFloatRun(run: string, opts: { dataDir?: string } = {}): Promise<FloatRun> {
  const folder = new RunFolder(run);
  const config = resolveConfig(folder.readConfig() as Partial<TrainConfig>);
  const file = folder.weightsFile();
  if (!file)
    throw new ConfigError(`${run} has neither ${folder.path("model")} nor ${folder.path("checkpoint")}`);
  const dataDir = opts.dataDir ?? config.dataDir;
  const { net, data } = buildRunModel(config, await openRunData({ ...config, dataDir }, () => {}));
  const initializers = loadModel(file).graph.initializers;
  const values = new Map<string, Tensor>();
  for (const k of [...net.params, ...net.buffers]) {
    const t = initializers.get(k);
    if (t) values.set(k, t);
  }
  const missing = net.params.filter((k) => !values.has(k));
  if (missing.length)
    throw new ConfigError(
      `${file} lacks parameters ${missing.join(", ")} of ${config.from ?? `model ${config.model}`}`,
    );
  loadStateDict(net, values);
  return { net, config, train: data.train, test: data.test, initializers };
}
