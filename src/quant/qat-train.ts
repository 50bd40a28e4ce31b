import type { Dataset } from "../data/dataset.js";
import type { NetModel } from "../nn/model.js";
import type { Tensor } from "../onnx/tensor.js";
import type { SessionOptions } from "../runtime/session.js";
import { buildTrainingStep, type StepOptions, type TrainingStep } from "../train/step.js";
import { calibrate } from "./calibrate.js";
import { lowerFakeQuant } from "./fake-quant.js";
import type { ObserverKind } from "./observer.js";
import { type Placement, placementTable, placeQuant } from "./placement.js";
import { applyQuant } from "./prepare.js";
import { type QConfig, qconfigFrom } from "./qconfig.js";

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
  /** Steps during which scales follow in-graph observers before they are frozen and learned (default 0). */
  observerSteps?: number;
}

/**
 * QAT around the trainer: calibrates the float model, builds the fake-quantized model for each phase of training
 * (observers on, then learned scales; BN batch statistics, then frozen statistics) and the lowered training step
 * for it. Sessions use graph optimisation "basic", so ORT runs the Q/DQ pairs as written and never swaps in integer
 * kernels (whose x86 u8·s8 saturation would make training differ from the simulation). At "all", ORT 1.30 gave
 * bit-identical losses and logits on mnist-cnn (weights are graph inputs there, so no QLinearConv fusion applies),
 * at no measurable speed difference; "basic" keeps that a guarantee rather than an observation.
 * "session.disable_quant_qdq" turns off ORT's QDQ graph rewrites, which at "basic" only move Q/DQ pairs around and
 * give every consumer of a DequantizeLinear its own copy (EnsureUniqueDQForNodeUnit, which prepares QDQ node
 * units for integer kernels and execution providers): in a training step a fake-quantized value is read by the
 * layer, by the layer's gradient and by the fake-quant's own backward, so it would be dequantized three times.
 */
export class QatTraining {
  readonly sessionOptions: SessionOptions = {
    optimization: "basic",
    config: { "session.disable_quant_qdq": "1" },
  };
  private cache = new Map<string, NetModel>();

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
      observerSteps: settings.observerSteps,
    });
    const placement = placeQuant(float, qconfig);
    // scales already calibrated (`qat calibrate`) or trained: start from them
    const names = [...placement.weights, ...placement.activations].flatMap((p) => [p.scale, p.zeroPoint]);
    if (opts.initial && names.every((n) => opts.initial!.has(n))) {
      return new QatTraining(
        float,
        settings,
        qconfig,
        placement,
        new Map(names.map((n) => [n, opts.initial!.get(n)!])),
      );
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

  /** The phase at `step`: observers on for the first observerSteps steps, BN frozen from freezeBnAfter on. */
  phaseAt(step: number): { observing: boolean; bnFrozen: boolean } {
    return {
      observing: step < this.qconfig.observerSteps,
      bnFrozen: this.qconfig.freezeBnAfter > 0 && step >= this.qconfig.freezeBnAfter,
    };
  }

  /** The fake-quantized model for the phase training is in at `step`. */
  netAt(step: number): NetModel {
    const phase = this.phaseAt(step);
    const key = JSON.stringify(phase);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const net = applyQuant(this.float, this.placement, this.qparams, phase);
    this.cache.set(key, net);
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
    return step > 0 && JSON.stringify(this.phaseAt(step)) !== JSON.stringify(this.phaseAt(step - 1));
  }

  /** What changes at `step` (for the log). */
  describeSwitch(step: number): string {
    const [a, b] = [this.phaseAt(step - 1), this.phaseAt(step)];
    const parts: string[] = [];
    if (a.observing && !b.observing) parts.push("observers frozen, scales learned from here");
    if (!a.bnFrozen && b.bnFrozen) parts.push("BN statistics frozen and folded");
    return `step ${step}: ${parts.join("; ")}`;
  }

  /** What a checkpoint records for export: the qconfig and the placement table. */
  meta(): Record<string, unknown> {
    return { settings: this.settings, qconfig: this.qconfig, placement: placementTable(this.placement) };
  }
}
