import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { Command, Option } from "commander";
import type { TrainConfig } from "../../src/pipeline/config.js";
import { train } from "../../src/pipeline/trainer.js";
import type { OptimizerSpec } from "../../src/train/optimizers.js";
import type { ScheduleSpec } from "../../src/train/schedules.js";
import { readConfigFile } from "../config-file.js";
import { UsageError } from "../errors.js";
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
      "zoo model: mnist-cnn, cifar-cnn, resnet8, lenet5, mobilenet-tiny (default: mnist-cnn, or the --init run's model)",
      "mnist-cnn",
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
    .option("--data <name>", "dataset: mnist, fashion-mnist, cifar10", "mnist")
    .option("--data-dir <dir>", "folder searched first for the dataset (then $QAT_DATA_DIR, then the cache)")
    .option("--epochs <n>", "epochs", "1")
    .option("--batch-size <n>", "batch size", "64")
    .addOption(new Option("--optimizer <kind>", "optimizer").choices(["sgd", "adam", "adamw"]).default("sgd"))
    .option("--lr <rate>", "base learning rate", "0.05")
    .option("--momentum <m>", "SGD momentum", "0.9")
    .option("--nesterov", "Nesterov momentum", false)
    .option("--weight-decay <wd>", "weight decay", "0.0005")
    .addOption(
      new Option("--schedule <kind>", "learning-rate schedule")
        .choices(["constant", "step", "cosine", "warmup-cosine", "one-cycle"])
        .default("cosine"),
    )
    .option("--warmup-steps <n>", "linear warm-up steps for warmup-cosine", "100")
    .option("--seed <n>", "seed of the initial weights, data order and augmentation", "1")
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option(
      "--val-fraction <f>",
      "share of the training set held out for validation (0: evaluate on test)",
      "0",
    )
    .option("--crop-padding <px>", "random-crop augmentation with this padding (0: off)", "0")
    .option("--flip", "random horizontal flips", false)
    .option("--patience <epochs>", "early stopping patience (0: off)", "0")
    .option("--checkpoint-every <steps>", "write checkpoint.onnx every this many steps", "200")
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
    const named = fromFlags.from
      ? basename(fromFlags.from).replace(/\.onnx$/i, "")
      : (fromFlags.model ?? fromFile.model ?? flags.model);
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

function num(v: string, flag: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${flag} expects a number, got "${v}"`);
  return n;
}

/** Flags given on the command line (or all flags where no config file sets the value). */
function flagsToConfig(
  f: TrainFlags,
  given: (k: keyof TrainFlags) => boolean,
  file: Partial<TrainConfig>,
): Partial<TrainConfig> {
  const use = (k: keyof TrainFlags, fileHas: boolean) => given(k) || !fileHas;
  const c: Partial<TrainConfig> = {};
  // without --model, a run folder given to --init names the model (the trainer reads its config.json)
  const initRun = f.init !== undefined && existsSync(join(f.init, "config.json"));
  if (given("model") || (file.model === undefined && !initRun)) c.model = f.model;
  if (f.from !== undefined) c.from = f.from;
  // an imported model without optimizer/schedule flags gets the fine-tuning defaults (resolveConfig)
  const importing = f.from !== undefined || file.from !== undefined;
  const input = inputConvention(f);
  if (input && !importing)
    throw new UsageError("--input-scale, --input-mean and --input-std apply to a model given with --from");
  if (input) c.input = input;
  if (use("data", file.data !== undefined)) c.data = f.data;
  if (f.dataDir !== undefined) c.dataDir = f.dataDir;
  if (use("epochs", file.epochs !== undefined)) c.epochs = num(f.epochs, "--epochs");
  if (use("batchSize", file.batchSize !== undefined)) c.batchSize = num(f.batchSize, "--batch-size");
  const optGiven = ["optimizer", "momentum", "nesterov", "weightDecay"].some((k) =>
    given(k as keyof TrainFlags),
  );
  if ((use("optimizer", file.optimizer !== undefined) && !importing) || optGiven)
    c.optimizer = optimizerFrom(f);
  const schedGiven = ["schedule", "lr", "warmupSteps"].some((k) => given(k as keyof TrainFlags));
  // QAT fine-tunes a trained model: its default learning rate is 10× lower (learned scales diverge at 0.05)
  if (f.qat !== undefined && f.qat !== false && !given("lr")) f.lr = "0.005";
  if ((use("schedule", file.schedule !== undefined) && !importing) || schedGiven)
    c.schedule = scheduleFrom(f);
  if (use("seed", file.seed !== undefined)) c.seed = num(f.seed, "--seed");
  if (use("threads", file.threads !== undefined)) c.threads = num(f.threads, "--threads");
  if (use("valFraction", file.valFraction !== undefined))
    c.valFraction = num(f.valFraction, "--val-fraction");
  if (given("cropPadding") || given("flip") || file.augment === undefined) {
    c.augment = { cropPadding: num(f.cropPadding, "--crop-padding"), flip: f.flip };
  }
  if (use("patience", file.patience !== undefined)) c.patience = num(f.patience, "--patience");
  if (use("checkpointEvery", file.checkpointEvery !== undefined))
    c.checkpointEvery = num(f.checkpointEvery, "--checkpoint-every");
  if (use("maxSteps", file.maxSteps !== undefined)) c.maxSteps = num(f.maxSteps, "--max-steps");
  if (use("evalLimit", file.evalLimit !== undefined)) c.evalLimit = num(f.evalLimit, "--eval-limit");
  if (f.init !== undefined) c.init = f.init;
  if (f.qat !== undefined && f.qat !== false) {
    c.qat = {
      preset: f.qat === true ? "ort-cpu" : f.qat,
      keepFloat: f.keepFloat
        ? f.keepFloat
            .split(",")
            .map((x) => x.trim())
            .filter(Boolean)
        : [],
      weightBits: parseLayerBits(f.weightBits),
      observer: f.observer as NonNullable<TrainConfig["qat"]>["observer"],
      calibrationBatches: num(f.calibrationBatches, "--calibration-batches"),
      freezeBnAfter: num(f.freezeBnAfter, "--freeze-bn-after"),
      observerSteps: num(f.observerSteps, "--observer-steps"),
    };
  } else if (["keepFloat", "weightBits", "observer"].some((k) => f[k as keyof TrainFlags] !== undefined)) {
    throw new UsageError("--keep-float, --weight-bits and --observer need --qat");
  }
  return c;
}

/** "conv1=8,fc=4" → { conv1: 8, fc: 4 }. */
export function parseLayerBits(spec: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (!spec) return out;
  for (const part of spec
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(.+)=(\d+)$/.exec(part);
    if (!m) throw new UsageError(`--weight-bits expects layer=bits pairs separated by commas, got "${part}"`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** --input-scale/--input-mean/--input-std of an imported model (undefined: none given). */
export function inputConvention(f: {
  from?: string;
  inputScale?: string;
  inputMean?: string;
  inputStd?: string;
}): TrainConfig["input"] {
  if (f.inputScale === undefined && f.inputMean === undefined && f.inputStd === undefined) return undefined;
  const list = (v: string, flag: string) => v.split(",").map((x) => num(x, flag));
  const c: NonNullable<TrainConfig["input"]> = {};
  if (f.inputScale !== undefined) c.scale = num(f.inputScale, "--input-scale");
  if (f.inputMean !== undefined) c.mean = list(f.inputMean, "--input-mean");
  if (f.inputStd !== undefined) c.std = list(f.inputStd, "--input-std");
  return c;
}

function optimizerFrom(f: TrainFlags): OptimizerSpec {
  const wd = num(f.weightDecay, "--weight-decay");
  if (f.optimizer === "sgd")
    return { kind: "sgd", momentum: num(f.momentum, "--momentum"), nesterov: f.nesterov, weightDecay: wd };
  return { kind: f.optimizer, weightDecay: wd };
}

function scheduleFrom(f: TrainFlags): ScheduleSpec {
  const lr = num(f.lr, "--lr");
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
        steps: num(f.warmupSteps, "--warmup-steps"),
        after: { kind: "cosine", lr, tMax: 0 },
      };
    case "one-cycle":
      return { kind: "one-cycle", maxLr: lr, totalSteps: 0 };
  }
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}
