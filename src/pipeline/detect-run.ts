/**
 * A detection run folder (written by `qat train` on a YOLO folder) read back: its configuration, the float model
 * with its trained weights and input normalisation, and its data — for post-training calibration, export and
 * evaluation of the detector.
 */
import { join } from "node:path";
import { tensorsAsDataset } from "../detect/tensors.js";
import { loadStateDict, type NetModel } from "../nn/model.js";
import { prependNormalization } from "../nn/normalize.js";
import { zooModel } from "../nn/zoo.js";
import { loadModel, modelOf } from "../onnx/codec.js";
import type { Tensor } from "../onnx/tensor.js";
import { calibrate } from "../quant/calibrate.js";
import type { ObserverKind } from "../quant/observer.js";
import { placementTable, placeQuant } from "../quant/placement.js";
import { applyQuant } from "../quant/prepare.js";
import { qconfigFrom } from "../quant/qconfig.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import { RunFolder } from "../train/run-folder.js";
import { writeCalibratedRun } from "./calibrate.js";
import { ConfigError, resolveConfig, type TrainConfig } from "./config.js";
import { detectionMapOfModel, mapFigures } from "./detect-eval.js";
import { DETECT_INPUT, type DetectRunData, openDetectData } from "./detect-trainer.js";

/** Whether a run folder holds a detection run. */
export function isDetectionRun(run: string): boolean {
  const folder = new RunFolder(run);
  return folder.has("config") && (folder.readConfig() as { task?: string }).task === "detect";
}

export interface DetectRun {
  config: TrainConfig;
  net: NetModel;
  data: DetectRunData;
}

/** The float detector of a run folder with its weights (model.onnx, else checkpoint.onnx) and its data. */
export function openDetectRun(run: string, opts: { evalLimit?: number } = {}): DetectRun {
  const folder = new RunFolder(run);
  const config = resolveConfig(folder.readConfig() as Partial<TrainConfig>);
  const file = folder.weightsFile();
  if (!file)
    throw new ConfigError(`${run} has neither ${folder.path("model")} nor ${folder.path("checkpoint")}`);
  const meta = loadCheckpoint(folder.path("checkpoint")).meta as {
    stats?: { mean: number[]; std: number[] };
  };
  if (!meta.stats)
    throw new ConfigError(`${folder.path("checkpoint")} has no input statistics: not a detection run`);
  const data = openDetectData(config.data, DETECT_INPUT, opts.evalLimit ?? 0);
  const net = zooModel(config.model, {
    seed: config.seed,
    classes: data.grid.classes,
    inputShape: DETECT_INPUT,
  });
  prependNormalization(net, meta.stats.mean, meta.stats.std);
  const inits = loadModel(file).graph.initializers;
  const values = new Map<string, Tensor>();
  for (const k of [...net.params, ...net.buffers]) {
    const t = inits.get(k);
    if (t) values.set(k, t);
  }
  const missing = net.params.filter((k) => !values.has(k));
  if (missing.length)
    throw new ConfigError(`${file} lacks parameters ${missing.join(", ")} of ${config.model}`);
  loadStateDict(net, values);
  return { config, net, data };
}

export interface CalibrateDetectorOptions {
  run: string;
  preset?: string;
  observer?: ObserverKind;
  batches?: number;
  keepFloat?: string[];
  threads?: number;
  evalLimit?: number;
  out?: string;
}

/**
 * Post-training quantization of a detection run: calibrate, score float and PTQ (fake-quant simulation) mAP on
 * val, and write the calibrated run folder that `qat export` exports (as `calibrateRun` does for classifiers).
 */
export async function calibrateDetector(o: CalibrateDetectorOptions) {
  const preset = o.preset ?? "ort-cpu";
  const threads = o.threads || undefined;
  const { config, net, data } = openDetectRun(o.run, { evalLimit: o.evalLimit });
  const qconfig = qconfigFrom(preset, { keepFloat: o.keepFloat ?? [], weightBits: {} });
  const placement = placeQuant(net, qconfig);
  const qparams = await calibrate(net, placement, tensorsAsDataset(data.train), {
    batches: o.batches ?? 32,
    batchSize: 64,
    seed: config.seed,
    threads,
    observer: o.observer,
  });
  const q = applyQuant(net, placement, qparams);
  const evalOpts = { stride: data.grid.stride, threads, optimization: "basic" as const };
  const float = await detectionMapOfModel(modelOf(net.eval), data.val, evalOpts);
  const ptq = await detectionMapOfModel(modelOf(q.eval), data.val, evalOpts);
  const out = new RunFolder(o.out ?? join(o.run, `calibrated-${preset}`));
  writeCalibratedRun(out, q.eval, {
    calibrated_from: o.run,
    config,
    task: "detect",
    quant: {
      settings: { preset, observer: o.observer ?? null },
      qconfig,
      placement: placementTable(placement),
    },
  });
  return { run: o.run, out: out.dir, preset, float: mapFigures(float), ptq: mapFigures(ptq) };
}
