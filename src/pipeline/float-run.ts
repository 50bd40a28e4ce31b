import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ArrayDataset } from "../data/dataset.js";
import { openNamedDataset } from "../data/named.js";
import { loadStateDict, type NetModel } from "../nn/model.js";
import { prependNormalization } from "../nn/normalize.js";
import { zooModel } from "../nn/zoo.js";
import { loadModel } from "../onnx/codec.js";
import type { Tensor } from "../onnx/tensor.js";
import { ConfigError, resolveConfig, type TrainConfig } from "./config.js";

export interface FloatRun {
  net: NetModel;
  config: TrainConfig;
  train: ArrayDataset;
  test: ArrayDataset;
  /** Every initializer of the run's model file (float weights, and scales when it was calibrated or trained). */
  initializers: Map<string, Tensor>;
}

/**
 * A trained run folder (from `qat train`) as a model with its weights and its datasets: the zoo model named in
 * config.json, input normalisation from the training set's statistics, parameters and buffers from model.onnx
 * (or checkpoint.onnx when training did not finish).
 */
export async function openFloatRun(run: string, opts: { dataDir?: string } = {}): Promise<FloatRun> {
  const cfgPath = join(run, "config.json");
  if (!existsSync(cfgPath))
    throw new ConfigError(`${run} is not a run folder (no config.json): train one with qat train`);
  const config = resolveConfig(JSON.parse(readFileSync(cfgPath, "utf8")) as Partial<TrainConfig>);
  const file = ["model.onnx", "checkpoint.onnx"].map((f) => join(run, f)).find((f) => existsSync(f));
  if (!file) throw new ConfigError(`${run} has neither model.onnx nor checkpoint.onnx`);
  const dataDir = opts.dataDir ?? config.dataDir;
  const train = await openNamedDataset(config.data, { split: "train", dataDir });
  const test = await openNamedDataset(config.data, { split: "test", dataDir });
  if (config.from)
    throw new ConfigError(
      `${run} trained an imported model (--from); calibrate and sensitivity take zoo-model runs`,
    );
  const net = zooModel(config.model, {
    seed: config.seed,
    classes: train.numClasses,
    inputShape: [...train.inputShape],
  });
  const stats = train.stats();
  prependNormalization(net, stats.mean, stats.std);
  const initializers = loadModel(file).graph.initializers;
  const values = new Map<string, Tensor>();
  for (const k of [...net.params, ...net.buffers]) {
    const t = initializers.get(k);
    if (t) values.set(k, t);
  }
  const missing = net.params.filter((k) => !values.has(k));
  if (missing.length)
    throw new ConfigError(`${file} lacks parameters ${missing.join(", ")} of model ${config.model}`);
  loadStateDict(net, values);
  return { net, config, train, test, initializers };
}
