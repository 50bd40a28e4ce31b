import type { QatSettings } from "../quant/qat-train.js";
import type { OptimizerSpec } from "../train/optimizers.js";
import type { ScheduleSpec } from "../train/schedules.js";

/** Everything a training run depends on. `config.json` in the run folder holds it fully resolved. */
export interface TrainConfig {
  /** A zoo model name (mnist-cnn, cifar-cnn, resnet8, lenet5, mobilenet-tiny). */
  model: string;
  /** Train this float ONNX model (a file) instead of a zoo model: see src/nn/import. */
  from?: string;
  /** Input convention of an imported model: it is fed (stored value · scale − mean) / std. Default: stored values. */
  input?: { scale?: number; mean?: number[]; std?: number[] };
  /** A named dataset (mnist, fashion-mnist, cifar10). */
  data: string;
  /** Folder searched first for the dataset's files. */
  dataDir?: string;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  /** Learning-rate schedule; its lr is the base learning rate. */
  schedule: ScheduleSpec;
  seed: number;
  /** ORT intra-op threads (results are bit-identical for the same seed and thread count). */
  threads: number;
  /** Share of the training set held out for validation (0: evaluate on the test set each epoch). */
  valFraction: number;
  augment: { cropPadding: number; flip: boolean };
  /** Stop when the evaluation accuracy has not improved for this many epochs (0: never). */
  patience: number;
  /** Write checkpoint.onnx every this many steps (and at the end of every epoch). */
  checkpointEvery: number;
  /** Stop after this many optimizer steps in total (0: no limit). */
  maxSteps: number;
  /** Evaluate on at most this many samples (0: all). */
  evalLimit: number;
  /** Start from the parameters and buffers of this model.onnx / checkpoint.onnx / run folder (e.g. a float run). */
  init?: string;
  /** Quantization-aware training (absent: float training). */
  qat?: QatSettings;
}

export const DEFAULTS: TrainConfig = {
  model: "mnist-cnn",
  data: "mnist",
  epochs: 1,
  batchSize: 64,
  optimizer: { kind: "sgd", momentum: 0.9, weightDecay: 5e-4 },
  // cosine over the whole run (tMax 0): resnet8 reaches 99.2% on MNIST in 2 epochs, 97.3% with a constant rate
  schedule: { kind: "cosine", lr: 0.05, tMax: 0 },
  seed: 1,
  threads: 0,
  valFraction: 0,
  augment: { cropPadding: 0, flip: false },
  patience: 0,
  checkpointEvery: 200,
  maxSteps: 0,
  evalLimit: 0,
};

/** Optimizer and schedule of an imported model (`from`) when none is given: fine-tuning a trained model. */
export const FINE_TUNE_DEFAULTS: Pick<TrainConfig, "optimizer" | "schedule"> = {
  optimizer: { kind: "adam" },
  schedule: { kind: "constant", lr: 1e-4 },
};

/**
 * Schedule of QAT on a zoo model when none is given: it fine-tunes a trained model, so its learning rate is 10×
 * lower than float training's (learned scales diverge at 0.05).
 */
export const QAT_SCHEDULE: ScheduleSpec = { kind: "cosine", lr: 0.005, tMax: 0 };

/** QAT settings left out take these. */
export const QAT_DEFAULTS: Required<Omit<QatSettings, "preset" | "observer">> = {
  keepFloat: [],
  weightBits: {},
  calibrationBatches: 32,
  freezeBnAfter: 0,
  observerSteps: 0,
};

/**
 * The base learning rate when the settings name none: float training's, QAT's, or an imported model's fine-tuning
 * rate. The CLI's --lr without --schedule and a schedule without --lr use it too.
 */
export function defaultSchedule(settings: Pick<Partial<TrainConfig>, "from" | "qat">): ScheduleSpec {
  if (settings.from !== undefined) return FINE_TUNE_DEFAULTS.schedule;
  return settings.qat ? QAT_SCHEDULE : DEFAULTS.schedule;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  readonly exitCode = 2;
}

/** Merge layers of settings (defaults ← config file ← flags), then check every value. */
export function resolveConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const c = { ...DEFAULTS } as TrainConfig;
  for (const l of layers) {
    for (const [k, v] of Object.entries(l))
      if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  }
  const given = (k: keyof TrainConfig) => layers.some((l) => l[k] !== undefined);
  if (c.from !== undefined) {
    if (typeof c.from !== "string" || c.from === "")
      throw new ConfigError(`from must be the path of an .onnx file, got ${c.from}`);
    if (!given("optimizer")) c.optimizer = FINE_TUNE_DEFAULTS.optimizer;
  }
  if (!given("schedule")) c.schedule = defaultSchedule(c);
  if (c.qat) {
    if (typeof c.qat.preset !== "string" || c.qat.preset === "")
      throw new ConfigError(`qat.preset must name a qconfig preset, got ${c.qat.preset}`);
    c.qat = { ...QAT_DEFAULTS, ...definedOnly(c.qat) } as QatSettings;
  }
  const positiveInt = (k: keyof TrainConfig) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${k} must be a positive integer, got ${v}`);
  };
  const nonNegInt = (k: keyof TrainConfig) => {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`${k} must be a whole number ≥ 0, got ${v}`);
  };
  positiveInt("epochs");
  positiveInt("batchSize");
  positiveInt("checkpointEvery");
  for (const k of ["seed", "threads", "patience", "maxSteps", "evalLimit"] as const) nonNegInt(k);
  if (!(c.valFraction >= 0 && c.valFraction < 1))
    throw new ConfigError(`valFraction must be in [0, 1), got ${c.valFraction}`);
  return c;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
