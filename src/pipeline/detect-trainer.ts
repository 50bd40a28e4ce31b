/**
 * Training a detector (tiny-det) on a YOLO-layout folder, float or quantization-aware: the same training step,
 * run folder and QAT machinery as classification, with targets assigned in the data pipeline
 * (src/detect/targets.ts), the CenterNet loss in the step graph (src/train/detect-loss.ts) and mAP50-95 / mAP50 on
 * the val split after every epoch (best.onnx keeps the epoch of highest mAP50-95).
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { DataLoader } from "../data/loader.js";
import type { DetectionSet } from "../detect/dataset.js";
import type { MapResult } from "../detect/map.js";
import type { TargetGrid } from "../detect/targets.js";
import {
  type DetectionTensors,
  fillTargets,
  loadDetectionTensors,
  tensorsAsDataset,
} from "../detect/tensors.js";
import { openYoloDataset } from "../detect/yolo.js";
import type { NetModel } from "../nn/model.js";
import { prependNormalization } from "../nn/normalize.js";
import { TINY_DET_STRIDE } from "../nn/tiny-det.js";
import { zooModel } from "../nn/zoo.js";
import type { Tensor } from "../onnx/tensor.js";
import { QatTraining } from "../quant/qat-train.js";
import { centerNetLoss } from "../train/detect-loss.js";
import { RunFolder } from "../train/run-folder.js";
import { schedule } from "../train/schedules.js";
import {
  buildTrainingStep,
  EvalRunner,
  type GraphLoss,
  TrainingRunner,
  type TrainingStep,
} from "../train/step.js";
import { ConfigError, resolveConfig, type TrainConfig } from "./config.js";
import { detectionMap, mapFigures } from "./detect-eval.js";
import { loadInit } from "./run-setup.js";
import { evalGraphWith, type TrainHooks, withHorizon } from "./trainer.js";

/** Whether `data` names a detection set: a YOLO folder (with data.yaml) or its data.yaml. */
export function isDetectionData(data: string | undefined): boolean {
  if (!data || !existsSync(data)) return false;
  if (statSync(data).isDirectory()) return existsSync(join(data, "data.yaml"));
  return /\.ya?ml$/i.test(data);
}

/**
 * Defaults of a detection run where the settings give none: AdamW with a short warm-up and cosine decay (the
 * focal loss's early gradients are large; SGD at classification's 0.05 diverged on the first batches), and for QAT
 * a 10× lower rate, as a fine-tune of the float run.
 */
export function detectDefaults(settings: Partial<TrainConfig>): Partial<TrainConfig> {
  const lr = settings.qat ? 2e-4 : 2e-3;
  return {
    model: "tiny-det",
    batchSize: 32,
    epochs: 10,
    optimizer: { kind: "adamw", weightDecay: 1e-4 },
    schedule: settings.qat
      ? { kind: "cosine", lr, tMax: 0 }
      : { kind: "warmup", lr, steps: 200, startFactor: 0.01, after: { kind: "cosine", lr, tMax: 0 } },
  };
}

export interface DetectTrainResult {
  run: string;
  task: "detect";
  /** Val mAP50-95, mAP50 and mAP75 of the final model. */
  map: number;
  map50: number;
  map75: number;
  best_map: number;
  best_epoch: number;
  epochs: number;
  steps: number;
  samples_per_s: number;
  seconds: number;
}

export interface DetectRunData {
  train: DetectionTensors;
  val: DetectionTensors;
  grid: TargetGrid;
}

/** Decode the train and val splits of a YOLO folder to the input shape (at most evalLimit val images when set). */
export function openDetectData(data: string, inputShape: number[], evalLimit = 0): DetectRunData {
  const train = openDetectSplit(data, "train", inputShape);
  return {
    train,
    val: openDetectSplit(data, "val", inputShape, evalLimit),
    grid: gridOf(train.set, inputShape),
  };
}

/** One split of a YOLO folder decoded to the input shape (at most `limit` images, 0: all). */
export function openDetectSplit(
  data: string,
  split: "train" | "val",
  inputShape: number[],
  limit = 0,
): DetectionTensors {
  const set: DetectionSet = openYoloDataset(data, split);
  if (set.images.length === 0) throw new ConfigError(`${data}: the ${split} split has no images`);
  return loadDetectionTensors(set, inputShape, limit);
}

/** tiny-det's output grid for a set's classes and the input shape. */
export function gridOf(set: DetectionSet, inputShape: number[]): TargetGrid {
  const [, h, w] = inputShape as [number, number, number];
  return {
    classes: set.classNames.length,
    stride: TINY_DET_STRIDE,
    rows: h / TINY_DET_STRIDE,
    cols: w / TINY_DET_STRIDE,
  };
}

/** The default input of tiny-det. */
export const DETECT_INPUT = [1, 96, 96];

/** Train a detector into a run folder (float, or QAT with `qat` settings; `init` starts from a float run). */
export async function trainDetector(
  settings: Partial<TrainConfig>,
  opts: { out: string; hooks?: TrainHooks },
): Promise<DetectTrainResult> {
  // one process per run folder, as classification training
  const unlock = new RunFolder(opts.out).lock("qat train");
  try {
    return await runDetector(settings, opts);
  } finally {
    unlock();
  }
}

/** A detection run being trained: its data, model, sessions and where it stands. */
interface DetRun {
  cfg: TrainConfig;
  folder: RunFolder;
  data: DetectRunData;
  stats: { mean: number[]; std: number[] };
  qat?: QatTraining;
  runNet: NetModel;
  loss: GraphLoss;
  sessionOpts: { threads?: number };
  runner: TrainingRunner;
  evaluator: EvalRunner;
  loader: DataLoader;
  total: number;
  steps: number;
  samples: number;
  best: { map: number; epoch: number };
  last?: MapResult;
  hooks: TrainHooks;
  log: (m: string) => void;
}

async function runDetector(
  settings: Partial<TrainConfig>,
  opts: { out: string; hooks?: TrainHooks },
): Promise<DetectTrainResult> {
  const started = Date.now();
  const run = await startDetector(resolveConfig(detectDefaults(settings), settings), opts);
  try {
    for (let epoch = 0; epoch < run.cfg.epochs && run.steps < run.total; epoch++) {
      const t0 = Date.now();
      const fit = await detectorEpoch(run, epoch, t0);
      await endDetectorEpoch(run, epoch, fit, t0);
    }
    run.folder.writeModel(evalGraphWith(run.runNet, run.runner.values()));
    const seconds = (Date.now() - started) / 1000;
    const { last, best } = run;
    const result: DetectTrainResult = {
      run: run.folder.dir,
      task: "detect",
      map: last?.map ?? Number.NaN,
      map50: last?.map50 ?? Number.NaN,
      map75: last?.map75 ?? Number.NaN,
      best_map: best.map,
      best_epoch: best.epoch,
      epochs: Math.ceil(run.steps / run.loader.batchesPerEpoch),
      steps: run.steps,
      samples_per_s: run.samples / Math.max(1e-3, seconds),
      seconds,
    };
    run.folder.writeSummary({
      ...result,
      val: last ? mapFigures(last) : null,
      class_names: run.data.train.set.classNames,
    });
    return result;
  } finally {
    await run.runner.release();
    await run.evaluator.release();
  }
}

/** Data, model (float, or fake-quantized after calibration), step and sessions of a new run. */
async function startDetector(cfg: TrainConfig, opts: { out: string; hooks?: TrainHooks }): Promise<DetRun> {
  const log = opts.hooks?.log ?? (() => {});
  if (cfg.model !== "tiny-det")
    throw new ConfigError(`${cfg.data} is a detection set: train tiny-det on it (got --model ${cfg.model})`);
  const folder = new RunFolder(opts.out);
  folder.assertNew();
  const data = openDetectData(cfg.data, DETECT_INPUT, cfg.evalLimit);
  log(`${cfg.data}: ${data.train.objects.length} train and ${data.val.objects.length} val images decoded`);
  const fitSet = tensorsAsDataset(data.train);
  const net = zooModel(cfg.model, { seed: cfg.seed, classes: data.grid.classes, inputShape: DETECT_INPUT });
  const stats = fitSet.stats();
  prependNormalization(net, stats.mean, stats.std);
  const initial = cfg.init ? loadInit(net, cfg.init) : undefined;
  const threads = cfg.threads || undefined;
  const qat = cfg.qat
    ? await QatTraining.create(net, cfg.qat, fitSet, {
        batchSize: cfg.batchSize,
        seed: cfg.seed,
        threads,
        initial,
      })
    : undefined;
  const loss = centerNetLoss(data.grid);
  const runNet = qat ? qat.netAt(0) : net;
  const step: TrainingStep = qat
    ? qat.trainingStep(0, { optimizer: cfg.optimizer, loss })
    : buildTrainingStep(net, { optimizer: cfg.optimizer, loss });
  folder.create();
  folder.writeConfig({ ...cfg, task: "detect" });
  const sessionOpts = { threads, ...qat?.sessionOptions };
  const runner = await TrainingRunner.create(step, sessionOpts);
  const evaluator = await EvalRunner.create(runNet, sessionOpts);
  const loader = new DataLoader(fitSet, { batchSize: cfg.batchSize, seed: cfg.seed, shuffle: true });
  const all = loader.batchesPerEpoch * cfg.epochs;
  return {
    cfg,
    folder,
    data,
    stats,
    qat,
    runNet,
    loss,
    sessionOpts,
    runner,
    evaluator,
    loader,
    total: cfg.maxSteps ? Math.min(cfg.maxSteps, all) : all,
    steps: 0,
    samples: 0,
    best: { map: -1, epoch: 0 },
    hooks: opts.hooks ?? {},
    log,
  };
}

/** One epoch's optimizer steps (targets assigned per batch); returns the summed loss and the samples seen. */
async function detectorEpoch(
  run: DetRun,
  epoch: number,
  t0: number,
): Promise<{ lossSum: number; seen: number }> {
  const { cfg, qat, loss, data } = run;
  const lrAt = schedule(withHorizon(cfg.schedule, run.total));
  const per = loss.targetShape.reduce((a, b) => a * b, 1);
  const targets = new Float32Array(cfg.batchSize * per);
  let lossSum = 0;
  let seen = 0;
  for await (const b of run.loader.epoch(epoch)) {
    if (qat?.switchesAt(run.steps)) {
      const next = await TrainingRunner.create(
        qat.trainingStep(run.steps, { optimizer: cfg.optimizer, loss }),
        run.sessionOpts,
      );
      next.load(new Map([...run.runner.values()]), run.steps);
      await run.runner.release();
      run.runner = next;
      run.log(qat.describeSwitch(run.steps));
    }
    fillTargets(data.train, b.items, data.grid, targets);
    const x: Tensor = { dtype: "float32", dims: [b.size, ...DETECT_INPUT], data: b.x };
    const y: Tensor = {
      dtype: "float32",
      dims: [b.size, ...loss.targetShape],
      data: targets.subarray(0, b.size * per),
    };
    const lr = lrAt(run.steps);
    const r = await run.runner.run(x, y, lr);
    if (!Number.isFinite(r.loss))
      throw new ConfigError(
        `the loss became ${r.loss} at step ${run.steps + 1}: lower the learning rate (--lr)`,
      );
    run.steps++;
    lossSum += r.loss * b.size;
    seen += b.size;
    run.hooks.onStep?.({
      step: run.steps,
      epoch,
      batch: b.batch + 1,
      batchesPerEpoch: run.loader.batchesPerEpoch,
      totalSteps: run.total,
      loss: r.loss,
      lr,
      samplesPerSec: (seen * 1000) / Math.max(1, Date.now() - t0),
    });
    if (run.steps >= run.total) break;
  }
  run.samples += seen;
  return { lossSum, seen };
}

/** mAP on val, the epoch's metrics record, best.onnx when mAP50-95 improved, and the checkpoint. */
async function endDetectorEpoch(
  run: DetRun,
  epoch: number,
  fit: { lossSum: number; seen: number },
  t0: number,
): Promise<void> {
  const trainSeconds = (Date.now() - t0) / 1000;
  const weights = run.runner.weights();
  const m = await detectionMap(async (x) => (await run.evaluator.run(x, { weights })).logits, run.data.val, {
    stride: run.data.grid.stride,
    batchSize: 64,
  });
  run.last = m;
  const record = {
    kind: "epoch",
    epoch: epoch + 1,
    step: run.steps,
    trainLoss: fit.lossSum / Math.max(1, fit.seen),
    map: m.map,
    map50: m.map50,
    map75: m.map75,
    samplesPerSec: fit.seen / Math.max(1e-3, trainSeconds),
    seconds: (Date.now() - t0) / 1000,
  };
  run.folder.appendMetrics(record);
  run.log(
    `epoch ${epoch + 1}: loss ${record.trainLoss.toFixed(4)}, val mAP50-95 ${(100 * m.map).toFixed(2)}, mAP50 ${(100 * m.map50).toFixed(2)}, ${Math.round(record.samplesPerSec)} samples/s`,
  );
  const graph = evalGraphWith(run.runNet, run.runner.values());
  if (m.map > run.best.map) {
    run.best = { map: m.map, epoch: epoch + 1 };
    run.folder.writeModel(graph, "best");
  }
  const { cfg, qat } = run;
  run.folder.writeCheckpoint({
    graph,
    state: new Map(),
    meta: {
      position: { epoch: epoch + 1, batch: 0, step: run.steps },
      config: cfg,
      model: cfg.model,
      dataset: cfg.data,
      task: "detect",
      stats: run.stats,
      ...(qat ? { quant: qat.meta() } : {}),
    },
  });
}
