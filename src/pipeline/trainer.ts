import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import { augment } from "../data/augment.js";
import { type Dataset, withClasses } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { openDataset } from "../data/open.js";
import { splitValidation } from "../data/split.js";
import { importModel } from "../nn/import/index.js";
import type { NetModel } from "../nn/model.js";
import { loadStateDict } from "../nn/model.js";
import { prependNormalization } from "../nn/normalize.js";
import { zooModel } from "../nn/zoo.js";
import { encodeModel, loadModel, modelOf } from "../onnx/codec.js";
import { cloneGraph } from "../onnx/ir.js";
import { WORKING_OPSET } from "../onnx/opset/working.js";
import type { Tensor } from "../onnx/tensor.js";
import { QatTraining } from "../quant/qat-train.js";
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from "../train/checkpoint.js";
import { evaluate } from "../train/evaluate.js";
import { ClassificationMetrics } from "../train/metrics.js";
import { RUN_FILES } from "../train/run-folder.js";
import { type ScheduleSpec, schedule } from "../train/schedules.js";
import { buildTrainingStep, EvalRunner, TrainingRunner } from "../train/step.js";
import { writeFileAtomic } from "../util/atomic.js";
import { ConfigError, resolveConfig, type TrainConfig } from "./config.js";

export interface StepEvent {
  step: number;
  epoch: number;
  batch: number;
  batchesPerEpoch: number;
  totalSteps: number;
  loss: number;
  lr: number;
  samplesPerSec: number;
}

export interface EpochEvent {
  epoch: number;
  step: number;
  trainLoss: number;
  trainAccuracy: number;
  evalAccuracy: number;
  evalTop5: number;
  evalOn: "validation" | "test";
  samplesPerSec: number;
  seconds: number;
}

export interface TrainHooks {
  onStep?(e: StepEvent): void;
  onEpoch?(e: EpochEvent): void;
  log?(message: string): void;
}

export interface TrainResult {
  run: string;
  test_accuracy: number;
  test_top5: number;
  epochs: number;
  steps: number;
  samples_per_s: number;
  seconds: number;
  best_epoch: number;
  stopped_early: boolean;
}

export class TrainError extends Error {
  override name = "TrainError";
}

interface Position {
  epoch: number;
  batch: number;
  step: number;
}

/**
 * Train a zoo model on a named dataset into a run folder. With `resume`, continue from the folder's checkpoint:
 * the result is bit-identical to an uninterrupted run with the same seed and thread count.
 */
export async function train(
  settings: Partial<TrainConfig>,
  opts: { out: string; resume?: boolean; hooks?: TrainHooks },
): Promise<TrainResult> {
  const hooks = opts.hooks ?? {};
  const log = hooks.log ?? (() => {});
  const out = opts.out;
  let cfg: TrainConfig;
  let ck: Checkpoint | undefined;
  if (opts.resume) {
    const cfgPath = join(out, RUN_FILES.config);
    if (!existsSync(cfgPath))
      throw new ConfigError(`${out} is not a run folder (no ${RUN_FILES.config}); nothing to resume`);
    cfg = resolveConfig(JSON.parse(readFileSync(cfgPath, "utf8")) as Partial<TrainConfig>);
    const ckPath = join(out, RUN_FILES.checkpoint);
    if (existsSync(ckPath)) ck = loadCheckpoint(ckPath);
    else log(`no checkpoint in ${out} yet: starting from the beginning`);
  } else {
    cfg = resolveConfig(inheritModel(settings));
    if (existsSync(out) && readdirSync(out).length > 0) {
      throw new ConfigError(
        `run folder ${out} already exists and is not empty: choose another --out, or --resume it`,
      );
    }
  }

  // data
  let trainSet: Dataset = await openDataset(cfg.data, { split: "train", dataDir: cfg.dataDir });
  let testSet: Dataset;
  // one file (CSV, NPZ, ...) knows its classes only from its labels and has no test split
  const oneFile = existsSync(cfg.data) && statSync(cfg.data).isFile();
  if (oneFile) {
    // one file (CSV, NPZ, ...) has no test split: hold out a seeded 10% as the test set
    if (trainSet.length < 20)
      throw new ConfigError(
        `${cfg.data} has ${trainSet.length} samples: too few to train and hold out a test set`,
      );
    const s = splitValidation(trainSet, { fraction: 0.1, seed: cfg.seed });
    log(`${cfg.data} has no separate test split: ${s.val.length} samples (10%) are held out as the test set`);
    trainSet = s.train;
    testSet = s.val;
  } else testSet = await openDataset(cfg.data, { split: "test", dataDir: cfg.dataDir });
  let fitSet: Dataset = trainSet;
  let evalSet: Dataset = testSet;
  if (cfg.valFraction > 0) {
    const s = splitValidation(trainSet, { fraction: cfg.valFraction, seed: cfg.seed });
    fitSet = s.train;
    evalSet = s.val;
  }
  const stats = fitSet.stats();
  if (cfg.augment.cropPadding > 0 || cfg.augment.flip) {
    fitSet = augment(fitSet, {
      seed: cfg.seed,
      cropPadding: cfg.augment.cropPadding,
      flip: cfg.augment.flip,
    });
  }

  // model and the training step
  const imported = cfg.from ? importModel(cfg.from, { input: cfg.input, seed: cfg.seed }) : undefined;
  const net =
    imported?.net ??
    zooModel(cfg.model, {
      seed: cfg.seed,
      classes: trainSet.numClasses,
      inputShape: [...trainSet.inputShape],
    });
  const what = cfg.from ?? `model ${cfg.model}`;
  if (net.inputShape.join(",") !== trainSet.inputShape.join(",")) {
    throw new ConfigError(
      `${what} takes [${net.inputShape}] inputs but dataset ${cfg.data} has [${trainSet.inputShape}] samples`,
    );
  }
  if (imported) {
    // labels must be classes of the model; a dataset that knows its classes only from its labels may use fewer
    const classes = imported.report.output.classes;
    if (trainSet.numClasses > classes || (!oneFile && trainSet.numClasses !== classes)) {
      throw new ConfigError(
        `${what} has ${classes} classes but dataset ${cfg.data} has ${trainSet.numClasses}`,
      );
    }
    [trainSet, testSet, fitSet, evalSet] = [trainSet, testSet, fitSet, evalSet].map((d) =>
      withClasses(d, classes),
    ) as [Dataset, Dataset, Dataset, Dataset];
  }
  // an imported model keeps the input convention it was trained with (cfg.input); zoo models normalise the data
  if (!imported) prependNormalization(net, stats.mean, stats.std);
  const initial = cfg.init && !opts.resume ? loadInit(net, cfg.init) : undefined;
  const startStep = ck ? (ck.meta as { position: Position }).position.step : 0;
  // QAT: calibrate the float model, then train its fake-quantized form (see src/quant/qat-train.ts)
  const qat = cfg.qat
    ? await QatTraining.create(net, cfg.qat, fitSet, {
        batchSize: cfg.batchSize,
        seed: cfg.seed,
        threads: cfg.threads || undefined,
        initial,
      })
    : undefined;
  const runNet = qat ? qat.netAt(startStep) : net;
  if (!opts.resume) {
    // only now that data and model are known good: a failed start leaves no run folder behind
    mkdirSync(out, { recursive: true });
    writeFileAtomic(join(out, RUN_FILES.config), `${JSON.stringify(cfg, null, 2)}\n`);
    if (imported) writeFileAtomic(join(out, "import.json"), `${JSON.stringify(imported.report, null, 2)}\n`);
  }
  const threads = cfg.threads || undefined;
  const sessionOpts = { threads, ...qat?.sessionOptions };
  const step = qat
    ? qat.trainingStep(startStep, { optimizer: cfg.optimizer })
    : buildTrainingStep(net, { optimizer: cfg.optimizer });
  let runner = await TrainingRunner.create(step, sessionOpts);
  const evaluator = await EvalRunner.create(runNet, sessionOpts);
  const loader = new DataLoader(fitSet, { batchSize: cfg.batchSize, seed: cfg.seed, shuffle: true });
  const perEpoch = loader.batchesPerEpoch;
  const totalSteps = cfg.maxSteps ? Math.min(cfg.maxSteps, perEpoch * cfg.epochs) : perEpoch * cfg.epochs;
  const lrAt = schedule(withHorizon(cfg.schedule, totalSteps));

  let pos: Position = { epoch: 0, batch: 0, step: 0 };
  let best = { accuracy: -1, epoch: -1 };
  let sinceBest = 0;
  if (ck) {
    const m = ck.meta as { position: Position; best: typeof best; sinceBest: number };
    // (a QAT checkpoint written just before a phase change may hold observer statistics the next phase drops)
    const carriedNames = new Set(step.carried.map((c) => c.name));
    const values = new Map<string, Tensor>([...ck.state].filter(([k]) => carriedNames.has(k)));
    for (const c of step.carried)
      if (c.kind !== "optimizer" && !values.has(c.name))
        values.set(c.name, ck.graph.initializers.get(c.name)!);
    runner.load(values, m.position.step);
    pos = m.position;
    best = m.best;
    sinceBest = m.sinceBest;
    truncateMetrics(join(out, RUN_FILES.metrics), pos.step);
    log(`resuming ${out} at epoch ${pos.epoch + 1}, batch ${pos.batch}, step ${pos.step}`);
  }

  const checkpoint = (p: Position) => {
    saveCheckpoint(join(out, RUN_FILES.checkpoint), {
      graph: evalGraphWith(runNet, runner.values()),
      state: stateToSave(runner, runNet),
      meta: {
        position: p,
        best,
        sinceBest,
        config: cfg,
        model: cfg.model,
        dataset: cfg.data,
        stats,
        ...(qat ? { quant: qat.meta() } : {}),
      },
    });
  };

  const started = Date.now();
  let samples = 0;
  let stoppedEarly = false;
  let lastGood = ck ? `${join(out, RUN_FILES.checkpoint)} (step ${pos.step})` : "none written yet";
  try {
    for (let epoch = pos.epoch; epoch < cfg.epochs && pos.step < totalSteps; epoch++) {
      const epochStart = Date.now();
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let windowStart = Date.now();
      let windowSamples = 0;
      const startBatch = epoch === pos.epoch ? pos.batch : 0;
      for await (const b of loader.epoch(epoch, startBatch)) {
        const lr = lrAt(pos.step);
        const x: Tensor = { dtype: "float32", dims: [b.size, ...net.inputShape], data: b.x };
        const y: Tensor = { dtype: "int64", dims: [b.size], data: b.y };
        if (qat?.switchesAt(pos.step)) {
          // a new QAT phase (BN statistics frozen): same carried values, another graph
          const nextStep = qat.trainingStep(pos.step, { optimizer: cfg.optimizer });
          const next = await TrainingRunner.create(nextStep, sessionOpts);
          const carried = new Set(nextStep.carried.map((c) => c.name));
          next.load(new Map([...runner.values()].filter(([k]) => carried.has(k))), pos.step);
          await runner.release();
          runner = next;
          log(qat.describeSwitch(pos.step));
        }
        const r = await runner.run(x, y, lr);
        if (!Number.isFinite(r.loss)) {
          throw new TrainError(
            `the loss became ${r.loss} at step ${pos.step + 1} (epoch ${epoch + 1}, batch ${b.batch + 1}); ` +
              `last good checkpoint: ${lastGood}. Lower the learning rate and --resume, or start again.`,
          );
        }
        pos = { epoch, batch: b.batch + 1, step: pos.step + 1 };
        lossSum += r.loss * b.size;
        correct += r.correct ?? 0;
        seen += b.size;
        samples += b.size;
        windowSamples += b.size;
        const now = Date.now();
        const sps = (windowSamples * 1000) / Math.max(1, now - windowStart);
        if (now - windowStart > 2000) {
          windowStart = now;
          windowSamples = 0;
        }
        hooks.onStep?.({
          step: pos.step,
          epoch,
          batch: b.batch + 1,
          batchesPerEpoch: perEpoch,
          totalSteps,
          loss: r.loss,
          lr,
          samplesPerSec: sps,
        });
        if (pos.step % cfg.checkpointEvery === 0) {
          checkpoint(pos);
          lastGood = `${join(out, RUN_FILES.checkpoint)} (step ${pos.step})`;
        }
        if (pos.step >= totalSteps) break;
      }
      if (pos.batch >= perEpoch) pos = { epoch: epoch + 1, batch: 0, step: pos.step };
      const ev = await evaluate(evaluator, evalSet, runner.weights(), cfg.batchSize, cfg.evalLimit);
      const seconds = (Date.now() - epochStart) / 1000;
      const e: EpochEvent = {
        epoch: epoch + 1,
        step: pos.step,
        trainLoss: seen ? lossSum / seen : Number.NaN,
        trainAccuracy: seen ? correct / seen : Number.NaN,
        evalAccuracy: ev.accuracy,
        evalTop5: ev.top5Accuracy,
        evalOn: cfg.valFraction > 0 ? "validation" : "test",
        samplesPerSec: seen / Math.max(1e-3, seconds),
        seconds,
      };
      appendFileSync(join(out, RUN_FILES.metrics), `${JSON.stringify({ kind: "epoch", ...e })}\n`);
      hooks.onEpoch?.(e);
      if (ev.accuracy > best.accuracy) {
        best = { accuracy: ev.accuracy, epoch: epoch + 1 };
        sinceBest = 0;
        writeFileAtomic(
          join(out, RUN_FILES.best),
          encodeModel(modelOf(evalGraphWith(runNet, runner.values()), { "": WORKING_OPSET })),
        );
      } else sinceBest++;
      checkpoint(pos);
      lastGood = `${join(out, RUN_FILES.checkpoint)} (step ${pos.step})`;
      if (cfg.patience > 0 && sinceBest >= cfg.patience) {
        log(`no improvement for ${cfg.patience} epochs: stopping early after epoch ${epoch + 1}`);
        stoppedEarly = true;
        break;
      }
    }

    const test = await evaluate(evaluator, testSet, runner.weights(), cfg.batchSize, cfg.evalLimit);
    writeFileAtomic(
      join(out, RUN_FILES.model),
      encodeModel(modelOf(evalGraphWith(runNet, runner.values()), { "": WORKING_OPSET })),
    );
    const seconds = (Date.now() - started) / 1000;
    const result: TrainResult = {
      run: out,
      test_accuracy: test.accuracy,
      test_top5: test.top5Accuracy,
      epochs: pos.epoch,
      steps: pos.step,
      samples_per_s: samples / Math.max(1e-3, seconds),
      seconds,
      best_epoch: best.epoch,
      stopped_early: stoppedEarly,
    };
    writeFileAtomic(
      join(out, RUN_FILES.summary),
      `${JSON.stringify({ ...result, test: test.toJSON(), class_names: testSet.classNames ?? null }, null, 2)}\n`,
    );
    return result;
  } finally {
    await runner.release();
    await evaluator.release();
  }
}

/**
 * Parameters and buffers from a model (model.onnx, checkpoint.onnx or a run folder holding them); returns all its
 * initializers (QAT starts from the scales of a calibrated model).
 */
/**
 * No model named but `init` is a run folder: train the model that run trained (its zoo model, or its imported
 * file with the same input convention), as `--init runs/resnet8 --qat` means.
 */
function inheritModel(settings: Partial<TrainConfig>): Partial<TrainConfig> {
  const cfgPath = settings.init ? join(settings.init, RUN_FILES.config) : "";
  if (settings.model !== undefined || settings.from !== undefined || !cfgPath || !existsSync(cfgPath))
    return settings;
  let run: Partial<TrainConfig>;
  try {
    run = JSON.parse(readFileSync(cfgPath, "utf8")) as Partial<TrainConfig>;
  } catch (e) {
    throw new ConfigError(`--init ${settings.init}: ${cfgPath} is not valid JSON (${(e as Error).message})`);
  }
  return { ...settings, model: run.model, from: run.from, input: settings.input ?? run.input };
}

function loadInit(net: NetModel, path: string): Map<string, Tensor> {
  const file = existsSync(join(path, RUN_FILES.model))
    ? join(path, RUN_FILES.model)
    : existsSync(join(path, RUN_FILES.checkpoint))
      ? join(path, RUN_FILES.checkpoint)
      : path;
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

/** Schedules given over "the whole run" (tMax or totalSteps 0) get the run's number of steps. */
export function withHorizon(spec: ScheduleSpec, steps: number): ScheduleSpec {
  switch (spec.kind) {
    case "cosine":
      return spec.tMax ? spec : { ...spec, tMax: steps };
    case "one-cycle":
      return spec.totalSteps ? spec : { ...spec, totalSteps: steps };
    case "warmup":
      return spec.after ? { ...spec, after: withHorizon(spec.after, Math.max(1, steps - spec.steps)) } : spec;
    default:
      return spec;
  }
}

/** The eval graph with the given parameter and buffer values as its initializers. */
function evalGraphWith(net: NetModel, values: Map<string, Tensor>) {
  const g = cloneGraph(net.eval);
  for (const [k, t] of values) if (g.initializers.has(k)) g.initializers.set(k, t);
  return g;
}

/** What a checkpoint must hold beyond the eval graph: optimizer state and buffers the eval graph lacks. */
function stateToSave(runner: TrainingRunner, net: NetModel): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of runner.values()) if (!net.eval.initializers.has(k)) out.set(k, t);
  return out;
}

/** Drop metric lines written after the checkpoint a resumed run starts from, so they are not counted twice. */
function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const keep = readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() && (JSON.parse(l) as { step: number }).step <= step);
  writeFileSync(path, keep.length ? `${keep.join("\n")}\n` : "");
}
