/**
 * The typed face of `quantizeModel` (what `qat quantize` calls): its options, the record of each stage it ran, and
 * its result. Stages stop at the first one within the accuracy budget; every stage run is recorded.
 */
import type { ImportReport } from "../../nn/import/report.js";

/** Stages in the order they run; a run stops at the first whose metric is within the budget. */
export type StageName = "reference" | "ptq" | "better-ptq" | "distill" | "mixed-precision" | "export";

/** Stages after PTQ, which a run may be told not to use. */
export type OptionalStage = "better-ptq" | "distill" | "mixed-precision";
export const OPTIONAL_STAGES: OptionalStage[] = ["better-ptq", "distill", "mixed-precision"];

export interface Preprocess {
  /** H×W the model's image input takes (default: the model's own). A different size is refused. */
  inputSize?: [number, number];
  /** How image files are brought to H×W: "resize" stretches, "letterbox" keeps the aspect ratio and pads. */
  fit?: "resize" | "letterbox";
  /** Multiply stored values (0–255 pixels) by this first (1/255 for a model fed 0–1). Default 1. */
  scale?: number;
  /** Then subtract these (one per channel or one for all). Default 0. */
  mean?: number[];
  /** Then divide by these. Default 1. */
  std?: number[];
  /** Where the channels are in the model's input (default: read from the model). */
  layout?: "nchw" | "nhwc";
}

export interface QuantizeOptions {
  /** The float .onnx file the user ships. */
  model: string;
  /**
   * A dataset with labels (mnist, a folder of class folders, .npz…), a folder of unlabelled images, or a YOLO
   * detection folder (data.yaml): a detector is then judged by mAP50-95 on its val split.
   */
  data: string;
  /**
   * "auto" (default): use labels when the data has them; "none": ignore them and measure fidelity to the float
   * model; a path: the labels .npy of a samples .npy.
   */
  labels?: string;
  /** Folder searched first for a named dataset (e.g. ../shared/data/mnist). */
  dataDir?: string;
  preprocess?: Preprocess;
  /** qconfig preset: ort-cpu (default), ort-cpu-x86-safe, tensorrt, w4a8. */
  preset?: string;
  /** Accepted drop of the metric from float, in points (default 1). */
  maxDrop?: number;
  /**
   * The optional stages the run may use when PTQ is not enough (default all three). Leave out "mixed-precision" to
   * never keep a layer at higher precision, "distill" to never train.
   */
  stages?: OptionalStage[];
  /** Where model.int8.onnx and stages.json go. */
  out: string;
  /** Held-out samples the metric is measured on (default 1000). */
  evalSamples?: number;
  /** Calibration / training samples (default 1024). */
  calibrationSamples?: number;
  /** AdaRound iterations per layer (default 1000). */
  adaroundIterations?: number;
  /** Cross-layer equalization in the better-PTQ stage (default true; false shows what it brings). */
  cle?: boolean;
  /** Distillation steps of 32 samples (default 500). */
  distillSteps?: number;
  seed?: number;
  threads?: number;
  /** Progress lines (stage started, stage result). */
  log?: (line: string) => void;
}

/** One stage as it ran: its metric, how long it took, what it changed. */
export interface StageRecord {
  stage: StageName;
  /** "done", or "skipped" with the reason in `changed`. */
  status: "done" | "skipped";
  /** The primary metric in points (accuracy % or agreement %), null for export and skipped stages. */
  metric: number | null;
  /** reference − metric, in points. */
  drop: number | null;
  withinBudget: boolean | null;
  seconds: number;
  /** What the stage did, in words. */
  changed: string;
  /** Further figures: top-5, per-output SQNR/cosine, observers chosen, parity. */
  details: Record<string, unknown>;
}

/** Per quantized layer, how far its output is from float in the final model (held-out samples). */
export interface LayerError {
  layer: string;
  /** SQNR of the layer's output in dB (higher is better). */
  sqnrDb: number;
  weightBits: number | null;
}

export interface QuantizeResult {
  model: string;
  out: string;
  /** The exported int8 model, the stage log, and the per-layer errors (also in stages.json). */
  files: { model: string; stages: string };
  preset: string;
  metric: { name: string; unit: string; labelled: boolean };
  maxDrop: number;
  reference: number;
  /** The kept (best) model's metric and drop. */
  final: number;
  drop: number;
  withinBudget: boolean;
  /** The stage whose model was exported. */
  exportedFrom: StageName;
  stages: StageRecord[];
  layers: LayerError[];
  /** Stages not run (training through an op qat has no gradient for), with why. */
  warnings: string[];
  import: Pick<ImportReport, "input" | "outputs" | "batch" | "opsKeptInFloat">;
}

/**
 * A problem with what the user gave (exit 2) or a budget that could not be met (exit 1, `exitCode` says which).
 */
export class QuantizeError extends Error {
  override name = "QuantizeError";
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 2,
  ) {
    super(message);
  }
}
