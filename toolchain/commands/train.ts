import { basename } from "node:path";
import { Command, Option } from "commander";
import { DEFAULTS, defaultSchedule, type TrainConfig } from "../../src/pipeline/config.js";
import { trainDetectorCli } from "./train-detect.js";
import { train } from "../../src/pipeline/trainer.js";
import type { QatSettings } from "../../src/quant/qat-train.js";
import type { OptimizerSpec } from "../../src/train/optimizers.js";
import type { ScheduleSpec } from "../../src/train/schedules.js";
import { count, parseNumber, positiveInt } from "../args.js";
import { readConfigFile } from "../config-file.js";
import { UsageError } from "../errors.js";
import { inputConvention, layerBits, layerList } from "../flags.js";
import { emit } from "../output.js";
import { trainProgress } from "../progress.js";

interface TrainFlags {
  model: string;
  from?: string;
  inputScale?: string;
  inputMean?: string;
  inputStd?: string;
  data: string;
  dataDir?: string;
  epochs: string;
  batchSize: string;
  optimizer: "sgd" | "adam" | "adamw";
  lr: string;
  momentum: string;
  nesterov: boolean;
  weightDecay: string;
  schedule: "constant" | "step" | "cosine" | "warmup-cosine" | "one-cycle";
  warmupSteps: string;
  seed: string;
  threads: string;
  valFraction: string;
  cropPadding: string;
  flip: boolean;
  patience: string;
  checkpointEvery: string;
  maxSteps: string;
  evalLimit: string;
  config: string;
  out?: string;
  resume?: string;
  json: boolean;
  init?: string;
  qat?: string | boolean;
  keepFloat?: string;
  weightBits?: string;
  observer?: string;
  calibrationBatches: string;
  freezeBnAfter: string;
  observerSteps: string;
}

/** `qat train`: a thin shell over `train()` in src/pipeline/trainer.ts. */
export function trainCommand(): Command {
  const cmd = new Command("train")
    .description(
      "train a model (float, or quantization-aware with --qat) into a run folder: config.json, metrics.jsonl, checkpoint.onnx, model.onnx, summary.json",
    )
    .option(
      "--model <name>",
      "zoo model: mnist-cnn, cifar-cnn, resnet8, lenet5, mobilenet-tiny; tiny-det for a detection dataset (default: mnist-cnn, or the --init run's model)",
      DEFAULTS.model,
    )
    .option(
      "--from <model.onnx>",
      "train this float ONNX model (PyTorch, TensorFlow, CNTK export) instead of a zoo model",
    )
    .option(
      "--input-scale <s>",
      "with --from: multiply the dataset's stored values by s before the model (e.g. 0.00392157)",
    )
    .option("--input-mean <m,...>", "with --from: then subtract these per-channel means")
    .option("--input-std <s,...>", "with --from: then divide by these per-channel standard deviations")
    .option("--data <name>", "dataset: mnist, fashion-mnist, cifar10", DEFAULTS.data)
    .option("--data-dir <dir>", "folder searched first for the dataset (then $QAT_DATA_DIR, then the cache)")
    .option("--epochs <n>", "epochs", String(DEFAULTS.epochs))
    .option("--batch-size <n>", "batch size", String(DEFAULTS.batchSize))
    .addOption(new Option("--optimizer <kind>", "optimizer").choices(["sgd", "adam", "adamw"]).default("sgd"))
    .option("--lr <rate>", "base learning rate", String(baseLr(DEFAULTS.schedule)))
    .option("--momentum <m>", "SGD momentum", "0.9")
    .option("--nesterov", "Nesterov momentum", false)
    .option("--weight-decay <wd>", "weight decay", "0.0005")
    .addOption(
      new Option("--schedule <kind>", "learning-rate schedule")
        .choices(["constant", "step", "cosine", "warmup-cosine", "one-cycle"])
        .default("cosine"),
    )
    .option("--warmup-steps <n>", "linear warm-up steps for warmup-cosine", "100")
    .option("--seed <n>", "seed of the initial weights, data order and augmentation", String(DEFAULTS.seed))
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option(
      "--val-fraction <f>",
      "share of the training set held out for validation (0: evaluate on test)",
      "0",
    )
    .option("--crop-padding <px>", "random-crop augmentation with this padding (0: off)", "0")
    .option("--flip", "random horizontal flips", false)
    .option("--patience <epochs>", "early stopping patience (0: off)", "0")
    .option(
      "--checkpoint-every <steps>",
      "write checkpoint.onnx every this many steps",
      String(DEFAULTS.checkpointEvery),
    )
    .option("--max-steps <n>", "stop after this many steps (0: no limit)", "0")
    .option("--eval-limit <n>", "evaluate on at most this many samples (0: all)", "0")
    .option(
      "--config <file>",
      "settings file; flags given on the command line override it",
      "qat.config.json",
    )
    .option("--out <folder>", "run folder (default runs/<model>-<time>)")
    .option("--resume <run>", "continue the run in this folder from its checkpoint")
    .option("--json", "print one JSON summary object as the last line of stdout", false)
    .option(
      "--init <model>",
      "start from the weights of a model.onnx, checkpoint.onnx or run folder (e.g. a float run)",
    )
    .option(
      "--qat [preset]",
      "quantization-aware training with a qconfig preset: ort-cpu, ort-cpu-x86-safe, tensorrt, w4a8 (default --lr 0.005; with --from, Adam at 1e-4)",
    )
    .option("--keep-float <layers>", "with --qat: comma-separated layers left in float")
    .option("--weight-bits <layer=bits,...>", "with --qat: per-layer weight bits, e.g. conv1=8,fc=4")
    .addOption(
      new Option("--observer <kind>", "with --qat: activation observer of the calibration").choices([
        "minmax",
        "moving-average",
        "percentile",
        "mse",
        "entropy",
      ]),
    )
    .option("--calibration-batches <n>", "with --qat: calibration batches before QAT", "32")
    .option(
      "--freeze-bn-after <steps>",
      "with --qat: freeze BN statistics after this many steps (0: never)",
      "0",
    )
    .option(
      "--observer-steps <n>",
      "with --qat: steps with in-graph observers setting the scales before they are learned",
      "0",
    );
  cmd.action(async (flags: TrainFlags) => {
    const given = (k: keyof TrainFlags) => cmd.getOptionValueSource(k) === "cli";
    const fromFile = flags.resume ? {} : readConfigFile(flags.config, given("config"));
    const fromFlags = flagsToConfig(flags, given, fromFile);
    // a YOLO-layout folder (data.yaml) makes it a detection run: tiny-det, mAP on val
    if (await trainDetectorCli({ ...fromFile, ...fromFlags }, flags)) return;
    const named = fromFlags.from
      ? basename(fromFlags.from).replace(/\.onnx$/i, "")
      : (fromFlags.model ?? fromFile.model ?? DEFAULTS.model);
    const out = flags.resume ?? flags.out ?? `runs/${named}-${stamp()}`;
    const progress = trainProgress();
    try {
      const result = await train(
        { ...fromFile, ...fromFlags },
        { out, resume: !!flags.resume, hooks: progress },
      );
      progress.stop();
      emit(
        flags,
        `test accuracy ${(100 * result.test_accuracy).toFixed(2)}% (top-5 ${(100 * result.test_top5).toFixed(2)}%) ` +
          `after ${result.steps} step${result.steps === 1 ? "" : "s"} (${result.epochs} complete epoch${result.epochs === 1 ? "" : "s"}), ${Math.round(result.samples_per_s)} samples/s, ` +
          `${result.seconds.toFixed(1)} s\nrun folder: ${result.run}\nHTML report of the run: qat report ${result.run}`,
        result,
      );
    } finally {
      progress.stop();
    }
  });
  return cmd;
}

/**
 * The settings given on the command line, and nothing else: defaults (QAT's learning rate, an imported model's
 * fine-tuning optimizer) are the library's (resolveConfig in src/pipeline/config.ts), so `qat train` and `train()`
 * resolve the same configuration from the same inputs.
 */
export function flagsToConfig(
  f: TrainFlags,
  given: (k: keyof TrainFlags) => boolean,
  file: Partial<TrainConfig>,
): Partial<TrainConfig> {
  const c: Partial<TrainConfig> = {};
  if (given("model")) c.model = f.model;
  if (f.from !== undefined) c.from = f.from;
  const input = inputConvention(f);
  if (input && f.from === undefined && file.from === undefined)
    throw new UsageError("--input-scale, --input-mean and --input-std apply to a model given with --from");
  if (input) c.input = input;
  if (given("data")) c.data = f.data;
  if (f.dataDir !== undefined) c.dataDir = f.dataDir;
  if (given("epochs")) c.epochs = positiveInt(f.epochs, "--epochs");
  if (given("batchSize")) c.batchSize = positiveInt(f.batchSize, "--batch-size");
  if (["optimizer", "momentum", "nesterov", "weightDecay"].some((k) => given(k as keyof TrainFlags)))
    c.optimizer = optimizerFrom(f);
  const qat = qatFrom(f, given);
  if (["schedule", "lr", "warmupSteps"].some((k) => given(k as keyof TrainFlags))) {
    // a learning rate left out is the library's default for this kind of run (float, QAT or imported)
    const lr = given("lr")
      ? parseNumber(f.lr, "--lr", { min: 0 })
      : baseLr(defaultSchedule({ from: f.from ?? file.from, qat: qat ?? file.qat }));
    c.schedule = scheduleFrom(f, lr);
  }
  if (given("seed")) c.seed = count(f.seed, "--seed");
  if (given("threads")) c.threads = count(f.threads, "--threads");
  if (given("valFraction")) c.valFraction = parseNumber(f.valFraction, "--val-fraction", { min: 0, max: 1 });
  if (given("cropPadding") || given("flip"))
    c.augment = { cropPadding: count(f.cropPadding, "--crop-padding"), flip: f.flip };
  if (given("patience")) c.patience = count(f.patience, "--patience");
  if (given("checkpointEvery")) c.checkpointEvery = positiveInt(f.checkpointEvery, "--checkpoint-every");
  if (given("maxSteps")) c.maxSteps = count(f.maxSteps, "--max-steps");
  if (given("evalLimit")) c.evalLimit = count(f.evalLimit, "--eval-limit");
  if (f.init !== undefined) c.init = f.init;
  if (qat) c.qat = qat;
  return c;
}

/** --qat and its settings (only those given; resolveConfig fills the rest). */
function qatFrom(f: TrainFlags, given: (k: keyof TrainFlags) => boolean): QatSettings | undefined {
  if (f.qat === undefined || f.qat === false) {
    if (["keepFloat", "weightBits", "observer"].some((k) => f[k as keyof TrainFlags] !== undefined))
      throw new UsageError("--keep-float, --weight-bits and --observer need --qat");
    return undefined;
  }
  const q: QatSettings = { preset: f.qat === true ? "ort-cpu" : f.qat };
  if (f.keepFloat !== undefined) q.keepFloat = layerList(f.keepFloat);
  if (f.weightBits !== undefined) q.weightBits = layerBits(f.weightBits);
  if (f.observer !== undefined) q.observer = f.observer as QatSettings["observer"];
  if (given("calibrationBatches"))
    q.calibrationBatches = positiveInt(f.calibrationBatches, "--calibration-batches");
  if (given("freezeBnAfter")) q.freezeBnAfter = count(f.freezeBnAfter, "--freeze-bn-after");
  if (given("observerSteps")) q.observerSteps = count(f.observerSteps, "--observer-steps");
  return q;
}

function optimizerFrom(f: TrainFlags): OptimizerSpec {
  const wd = parseNumber(f.weightDecay, "--weight-decay", { min: 0 });
  if (f.optimizer === "sgd")
    return {
      kind: "sgd",
      momentum: parseNumber(f.momentum, "--momentum", { min: 0, max: 1 }),
      nesterov: f.nesterov,
      weightDecay: wd,
    };
  return { kind: f.optimizer, weightDecay: wd };
}

function baseLr(spec: ScheduleSpec): number {
  return spec.kind === "one-cycle" ? spec.maxLr : spec.lr;
}

function scheduleFrom(f: TrainFlags, lr: number): ScheduleSpec {
  // cosine and one-cycle run over the whole training: 0 steps means "all of it" (see withHorizon in the trainer)
  switch (f.schedule) {
    case "constant":
      return { kind: "constant", lr };
    case "step":
      return { kind: "step", lr, stepSize: 1000, gamma: 0.1 };
    case "cosine":
      return { kind: "cosine", lr, tMax: 0 };
    case "warmup-cosine":
      return {
        kind: "warmup",
        lr,
        steps: count(f.warmupSteps, "--warmup-steps"),
        after: { kind: "cosine", lr, tMax: 0 },
      };
    case "one-cycle":
      return { kind: "one-cycle", maxLr: lr, totalSteps: 0 };
  }
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}
