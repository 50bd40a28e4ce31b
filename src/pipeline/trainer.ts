import { DataLoader } from "../data/loader.js";
import type { NetModel } from "../nn/model.js";
import { cloneGraph } from "../onnx/ir.js";
import type { Tensor } from "../onnx/tensor.js";
import { QatTraining } from "../quant/qat-train.js";
import type { Checkpoint } from "../train/checkpoint.js";
import { evaluate } from "../train/evaluate.js";
import { RunFolder } from "../train/run-folder.js";
import { type ScheduleSpec, schedule } from "../train/schedules.js";
import { buildTrainingStep, EvalRunner, TrainingRunner, type TrainingStep } from "../train/step.js";
import { ConfigError, resolveConfig, type TrainConfig } from "./config.js";
import { buildRunModel, inheritModel, loadInit, openRunData, type RunData } from "./run-setup.js";

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

/** Where training stands beyond the position: the best evaluation so far and the epochs since it. */
interface Progress {
  pos: Position;
  best: { accuracy: number; epoch: number };
  sinceBest: number;
}

/** A run ready to train: its config, data, model and sessions, and where it starts. */
interface Run {
  folder: RunFolder;
  cfg: TrainConfig;
  data: RunData;
  net: NetModel;
  /** The eval graph training runs (the fake-quantized one for QAT). */
  runNet: NetModel;
  qat?: QatTraining;
  step: TrainingStep;
  runner: TrainingRunner;
  evaluator: EvalRunner;
  sessionOpts: { threads?: number };
  loader: DataLoader;
  totalSteps: number;
  lrAt: (step: number) => number;
  progress: Progress;
  /** Step of the last checkpoint written or resumed from (named when the loss diverges). */
  lastCheckpoint?: number;
  /** When training (after setup) started, and the samples trained on since. */
  started: number;
  samples: number;
  hooks: TrainHooks;
  log: (message: string) => void;
}

/**
 * The resolved configuration `train` runs with for these settings: the defaults of src/pipeline/config.ts, and
 * the model of an --init run folder when none is named. `qat train` writes the same into config.json.
 */
export function trainConfig(settings: Partial<TrainConfig>): TrainConfig {
  return resolveConfig(inheritModel(settings));
}

/**
 * Train a zoo model on a named dataset into a run folder. With `resume`, continue from the folder's checkpoint:
 * the result is bit-identical to an uninterrupted run with the same seed and thread count.
 */
export async function train(
  settings: Partial<TrainConfig>,
  opts: { out: string; resume?: boolean; hooks?: TrainHooks },
): Promise<TrainResult> {
  const unlock = new RunFolder(opts.out).lock(opts.resume ? "qat train --resume" : "qat train");
  try {
    const run = await startRun(settings, opts);
    run.started = Date.now();
    try {
      const stoppedEarly = await trainEpochs(run);
      return await finishRun(run, stoppedEarly);
    } finally {
      await run.runner.release();
      await run.evaluator.release();
    }
  } finally {
    unlock();
  }
}

/** Config, data, model, sessions and position of a new run, or of the run in `out` when resuming. */
async function startRun(
  settings: Partial<TrainConfig>,
  opts: { out: string; resume?: boolean; hooks?: TrainHooks },
): Promise<Run> {
  const hooks = opts.hooks ?? {};
  const log = hooks.log ?? (() => {});
  const folder = new RunFolder(opts.out);
  let cfg: TrainConfig;
  let ck: Checkpoint | undefined;
  if (opts.resume) {
    if (!folder.has("config"))
      throw new ConfigError(
        `${opts.out} is not a run folder (no ${folder.path("config")}); nothing to resume`,
      );
    cfg = resolveConfig(folder.readConfig() as Partial<TrainConfig>);
    ck = folder.readCheckpoint();
    if (!ck) log(`no checkpoint in ${opts.out} yet: starting from the beginning`);
  } else {
    cfg = trainConfig(settings);
    folder.assertNew(); // created below, once data and model are known good
  }
  const built = buildRunModel(cfg, await openRunData(cfg, log));
  const { net, data } = built;
  const initial = cfg.init && !opts.resume ? loadInit(net, cfg.init) : undefined;
  const startStep = ck ? (ck.meta as { position: Position }).position.step : 0;
  const threads = cfg.threads || undefined;
  // QAT: calibrate the float model, then train its fake-quantized form (see src/quant/qat-train.ts)
  const qat = cfg.qat
    ? await QatTraining.create(net, cfg.qat, data.fit, {
        batchSize: cfg.batchSize,
        seed: cfg.seed,
        threads,
        initial,
      })
    : undefined;
  const runNet = qat ? qat.netAt(startStep) : net;
  if (!opts.resume) {
    // only now that data and model are known good: a failed start leaves no run folder behind
    folder.create();
    folder.writeConfig(cfg);
    if (built.imported) folder.writeJson("importReport", built.imported);
  }
  const sessionOpts = { threads, ...qat?.sessionOptions };
  const step = qat
    ? qat.trainingStep(startStep, { optimizer: cfg.optimizer })
    : buildTrainingStep(net, { optimizer: cfg.optimizer });
  const runner = await TrainingRunner.create(step, sessionOpts);
  const evaluator = await EvalRunner.create(runNet, sessionOpts);
  const loader = new DataLoader(data.fit, { batchSize: cfg.batchSize, seed: cfg.seed, shuffle: true });
  const perEpoch = loader.batchesPerEpoch;
  const totalSteps = cfg.maxSteps ? Math.min(cfg.maxSteps, perEpoch * cfg.epochs) : perEpoch * cfg.epochs;
  const run: Run = {
    folder,
    cfg,
    data,
    net,
    runNet,
    qat,
    step,
    runner,
    evaluator,
    sessionOpts,
    loader,
    totalSteps,
    lrAt: schedule(withHorizon(cfg.schedule, totalSteps)),
    progress: { pos: { epoch: 0, batch: 0, step: 0 }, best: { accuracy: -1, epoch: -1 }, sinceBest: 0 },
    started: 0,
    samples: 0,
    hooks,
    log,
  };
  if (ck) restore(run, ck);
  return run;
}

/** Load the checkpoint's carried values and position into a new run, and drop metrics written after it. */
function restore(run: Run, ck: Checkpoint): void {
  const m = ck.meta as { position: Position; best: Progress["best"]; sinceBest: number };
  // (a QAT checkpoint written just before a phase change may hold observer statistics the next phase drops)
  const carriedNames = new Set(run.step.carried.map((c) => c.name));
  const values = new Map<string, Tensor>([...ck.state].filter(([k]) => carriedNames.has(k)));
  for (const c of run.step.carried)
    if (c.kind !== "optimizer" && !values.has(c.name)) values.set(c.name, ck.graph.initializers.get(c.name)!);
  run.runner.load(values, m.position.step);
  run.progress = { pos: m.position, best: m.best, sinceBest: m.sinceBest };
  run.lastCheckpoint = m.position.step;
  run.folder.truncateMetrics(m.position.step);
  const p = m.position;
  run.log(`resuming ${run.folder.dir} at epoch ${p.epoch + 1}, batch ${p.batch}, step ${p.step}`);
}

/** Write checkpoint.onnx at the current position. */
function checkpoint(run: Run): void {
  const { pos, best, sinceBest } = run.progress;
  const cfg = run.cfg;
  run.folder.writeCheckpoint({
    graph: evalGraphWith(run.runNet, run.runner.values()),
    state: stateToSave(run.runner, run.runNet),
    meta: {
      position: pos,
      best,
      sinceBest,
      config: cfg,
      model: cfg.model,
      dataset: cfg.data,
      stats: run.data.stats,
      ...(run.qat ? { quant: run.qat.meta() } : {}),
    },
  });
  run.lastCheckpoint = pos.step;
}

/** The epochs from the run's position on; returns whether early stopping ended them. */
async function trainEpochs(run: Run): Promise<boolean> {
  const { cfg } = run;
  for (
    let epoch = run.progress.pos.epoch;
    epoch < cfg.epochs && run.progress.pos.step < run.totalSteps;
    epoch++
  ) {
    const started = Date.now();
    const fit = await trainEpoch(run, epoch);
    run.samples += fit.seen;
    if (run.progress.pos.batch >= run.loader.batchesPerEpoch)
      run.progress.pos = { epoch: epoch + 1, batch: 0, step: run.progress.pos.step };
    if (await endEpoch(run, epoch, fit, (Date.now() - started) / 1000)) return true;
  }
  return false;
}

/** One epoch's batches (from the run's position on); returns the loss and accuracy on what it saw. */
async function trainEpoch(
  run: Run,
  epoch: number,
): Promise<{ lossSum: number; correct: number; seen: number }> {
  const { cfg, qat, hooks } = run;
  const perEpoch = run.loader.batchesPerEpoch;
  let lossSum = 0;
  let correct = 0;
  let seen = 0;
  let windowStart = Date.now();
  let windowSamples = 0;
  const startBatch = epoch === run.progress.pos.epoch ? run.progress.pos.batch : 0;
  for await (const b of run.loader.epoch(epoch, startBatch)) {
    const pos = run.progress.pos;
    const lr = run.lrAt(pos.step);
    const x: Tensor = { dtype: "float32", dims: [b.size, ...run.net.inputShape], data: b.x };
    const y: Tensor = { dtype: "int64", dims: [b.size], data: b.y };
    if (qat?.switchesAt(pos.step)) await switchPhase(run, qat, pos.step);
    const r = await run.runner.run(x, y, lr);
    if (!Number.isFinite(r.loss)) {
      const lastGood =
        run.lastCheckpoint === undefined
          ? "none written yet"
          : `${run.folder.path("checkpoint")} (step ${run.lastCheckpoint})`;
      throw new TrainError(
        `the loss became ${r.loss} at step ${pos.step + 1} (epoch ${epoch + 1}, batch ${b.batch + 1}); ` +
          `last good checkpoint: ${lastGood}. Lower the learning rate and --resume, or start again.`,
      );
    }
    run.progress.pos = { epoch, batch: b.batch + 1, step: pos.step + 1 };
    lossSum += r.loss * b.size;
    correct += r.correct ?? 0;
    seen += b.size;
    windowSamples += b.size;
    const now = Date.now();
    const sps = (windowSamples * 1000) / Math.max(1, now - windowStart);
    if (now - windowStart > 2000) {
      windowStart = now;
      windowSamples = 0;
    }
    const step = run.progress.pos.step;
    hooks.onStep?.({
      step,
      epoch,
      batch: b.batch + 1,
      batchesPerEpoch: perEpoch,
      totalSteps: run.totalSteps,
      loss: r.loss,
      lr,
      samplesPerSec: sps,
    });
    if (step % cfg.checkpointEvery === 0) checkpoint(run);
    if (step >= run.totalSteps) break;
  }
  return { lossSum, correct, seen };
}

/** A new QAT phase (BN statistics frozen): the same carried values in another graph. */
async function switchPhase(run: Run, qat: QatTraining, step: number): Promise<void> {
  const nextStep = qat.trainingStep(step, { optimizer: run.cfg.optimizer });
  const next = await TrainingRunner.create(nextStep, run.sessionOpts);
  const carried = new Set(nextStep.carried.map((c) => c.name));
  next.load(new Map([...run.runner.values()].filter(([k]) => carried.has(k))), step);
  await run.runner.release();
  run.runner = next;
  run.step = nextStep;
  run.log(qat.describeSwitch(step));
}

/**
 * Evaluate after an epoch, append its metrics, keep the best model and write the checkpoint; returns whether
 * early stopping ends training here.
 */
async function endEpoch(
  run: Run,
  epoch: number,
  fit: { lossSum: number; correct: number; seen: number },
  seconds: number,
): Promise<boolean> {
  const { cfg, progress } = run;
  const ev = await evaluate(run.evaluator, run.data.eval, run.runner.weights(), cfg.batchSize, cfg.evalLimit);
  const e: EpochEvent = {
    epoch: epoch + 1,
    step: progress.pos.step,
    trainLoss: fit.seen ? fit.lossSum / fit.seen : Number.NaN,
    trainAccuracy: fit.seen ? fit.correct / fit.seen : Number.NaN,
    evalAccuracy: ev.accuracy,
    evalTop5: ev.top5Accuracy,
    evalOn: cfg.valFraction > 0 ? "validation" : "test",
    samplesPerSec: fit.seen / Math.max(1e-3, seconds),
    seconds,
  };
  run.folder.appendMetrics({ kind: "epoch", ...e });
  run.hooks.onEpoch?.(e);
  if (ev.accuracy > progress.best.accuracy) {
    progress.best = { accuracy: ev.accuracy, epoch: epoch + 1 };
    progress.sinceBest = 0;
    run.folder.writeModel(evalGraphWith(run.runNet, run.runner.values()), "best");
  } else progress.sinceBest++;
  checkpoint(run);
  if (cfg.patience > 0 && progress.sinceBest >= cfg.patience) {
    run.log(`no improvement for ${cfg.patience} epochs: stopping early after epoch ${epoch + 1}`);
    return true;
  }
  return false;
}

/** The final test evaluation, model.onnx and summary.json. */
async function finishRun(run: Run, stoppedEarly: boolean): Promise<TrainResult> {
  const { cfg, progress } = run;
  const test = await evaluate(
    run.evaluator,
    run.data.test,
    run.runner.weights(),
    cfg.batchSize,
    cfg.evalLimit,
  );
  run.folder.writeModel(evalGraphWith(run.runNet, run.runner.values()));
  const seconds = (Date.now() - run.started) / 1000;
  const result: TrainResult = {
    run: run.folder.dir,
    test_accuracy: test.accuracy,
    test_top5: test.top5Accuracy,
    epochs: progress.pos.epoch,
    steps: progress.pos.step,
    samples_per_s: run.samples / Math.max(1e-3, seconds),
    seconds,
    best_epoch: progress.best.epoch,
    stopped_early: stoppedEarly,
  };
  run.folder.writeSummary({ ...result, test: test.toJSON(), class_names: run.data.test.classNames ?? null });
  return result;
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
export function evalGraphWith(net: NetModel, values: Map<string, Tensor>) {
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
