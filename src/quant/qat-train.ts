import type { NetModel } from "../nn/model.js";
import type { SessionOptions } from "../runtime/session.js";
import type { Dataset } from "../train/data/dataset.js";
import { buildTrainingStep, type StepOptions, type TrainingStep } from "../train/step.js";
import { calibrate } from "./calibrate.js";
import { lowerFakeQuant } from "./fake-quant.js";
import type { ObserverKind } from "./observer.js";
import { type Placement, placeQuant, placementTable } from "./placement.js";
import { applyQuant } from "./prepare.js";
import { type QConfig, qconfigFrom } from "./qconfig.js";
import type { Tensor } from "../onnx/tensor.js";

/** What `qat train --qat` is told (kept in config.json). */
export interface QatSettings {
  /** qconfig preset: ort-cpu, ort-cpu-x86-safe, tensorrt, w4a8. */
  preset: string;
  /** Layers left in float. */
  keepFloat?: string[];
  /** Per-layer weight bits, e.g. { "conv1": 8, "fc": 4 }. */
  weightBits?: Record<string, number>;
  /** Activation observer for the calibration that sets the starting scales (default: the preset's). */
  observer?: ObserverKind;
  /** Calibration batches before QAT starts (default 32). */
  calibrationBatches?: number;
  /** Freeze BN statistics (and fold them into the weights for good) after this many steps (0: never). */
  freezeBnAfter?: number;
}

/**
 * QAT around the trainer: calibrates the float model, builds the fake-quantized model for each phase of training
 * (BN batch statistics, then frozen statistics) and the lowered training step for it. Session options: graph
 * optimisation "basic", so ORT runs the Q/DQ pairs as written and does not fuse them into integer kernels (whose
 * x86 u8·s8 saturation would make the training forward differ from the simulated one).
 */
export class QatTraining {
  readonly sessionOptions: SessionOptions = { optimization: "basic" };
  private cache = new Map<boolean, NetModel>();

  private constructor(
    readonly float: NetModel,
    readonly settings: QatSettings,
    readonly qconfig: QConfig,
    readonly placement: Placement,
    readonly qparams: Map<string, Tensor>,
  ) {}

  static async create(
    float: NetModel,
    settings: QatSettings,
    calibration: Dataset,
    opts: { batchSize?: number; seed?: number; threads?: number; initial?: Map<string, Tensor> } = {},
  ): Promise<QatTraining> {
    const qconfig = qconfigFrom(settings.preset, {
      keepFloat: settings.keepFloat,
      weightBits: settings.weightBits,
      freezeBnAfter: settings.freezeBnAfter,
    });
    const placement = placeQuant(float, qconfig);
    // scales already calibrated (`qat calibrate`) or trained: start from them
    const names = [...placement.weights, ...placement.activations].flatMap((p) => [p.scale, p.zeroPoint]);
    if (opts.initial && names.every((n) => opts.initial!.has(n))) {
      return new QatTraining(float, settings, qconfig, placement, new Map(names.map((n) => [n, opts.initial!.get(n)!])));
    }
    const qparams = await calibrate(float, placement, calibration, {
      batches: settings.calibrationBatches ?? 32,
      batchSize: opts.batchSize,
      seed: opts.seed,
      threads: opts.threads,
      observer: settings.observer,
    });
    return new QatTraining(float, settings, qconfig, placement, qparams);
  }

  private frozenAt(step: number): boolean {
    return this.qconfig.freezeBnAfter > 0 && step >= this.qconfig.freezeBnAfter;
  }

  /** The fake-quantized model for the phase training is in at `step`. */
  netAt(step: number): NetModel {
    const frozen = this.frozenAt(step);
    let net = this.cache.get(frozen);
    if (!net) this.cache.set(frozen, (net = applyQuant(this.float, this.placement, this.qparams, { bnFrozen: frozen })));
    return net;
  }

  /** The training step graph (lowered to Q/DQ) for the phase at `step`. */
  trainingStep(step: number, opts: StepOptions): TrainingStep {
    const s = buildTrainingStep(this.netAt(step), opts);
    lowerFakeQuant(s.model.graph);
    return s;
  }

  /** Whether the phase changes before running step `step` (counted from 0). */
  switchesAt(step: number): boolean {
    return step > 0 && this.frozenAt(step) !== this.frozenAt(step - 1);
  }

  /** What a checkpoint records for export: the qconfig and the placement table. */
  meta(): Record<string, unknown> {
    return { settings: this.settings, qconfig: this.qconfig, placement: placementTable(this.placement) };
  }
}
