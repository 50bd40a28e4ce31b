/** What `qat report` gathers from a run folder: every field is read from a file the run wrote. */
import type { ModelSummary } from "../onnx/summary.js";
import type { EpochEvent, TrainResult } from "../pipeline/trainer.js";
import type { SensitivityReport } from "../quant/sensitivity.js";

/** Bad input to the report (not a run folder, an unreadable or invalid file): exit code 2, names the file. */
export class ReportError extends Error {
  override name = "ReportError";
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message);
  }
}

/** One line of metrics.jsonl (kind "epoch"), with the phase of training it belongs to. */
export interface EpochPoint extends Omit<EpochEvent, "evalOn"> {
  phase: "float" | "qat";
  evalOn: string;
}

/** A run folder of `qat train` (or `qat calibrate`). */
export interface RunInfo {
  dir: string;
  phase: "float" | "qat" | "ptq";
  model: string;
  dataset: string;
  qatPreset?: string;
  epochs: EpochPoint[];
  /** summary.json, when training finished. */
  summary?: Pick<
    TrainResult,
    "test_accuracy" | "test_top5" | "epochs" | "steps" | "samples_per_s" | "seconds"
  > & {
    /** Test samples the accuracy was measured on. */
    count?: number;
    per_class?: number[];
    class_names?: string[] | null;
  };
}

/** One quantized tensor of the QAT checkpoint, with its learned scales and zero points. */
export interface QuantRow {
  layer: string;
  kind: "weight" | "activation";
  tensor: string;
  dtype: string;
  bits: number;
  qmin: number;
  qmax: number;
  /** -1 per tensor, else the channel axis. */
  axis: number;
  scales: number[];
  zeroPoints: number[];
  /** The float range the integers cover: (qmin − zp)·s … (qmax − zp)·s, widest over channels. */
  rangeMin: number;
  rangeMax: number;
  /** From sensitivity.json (weight rows): accuracy with only this layer quantized, and its delta to float. */
  sensitivity?: { accuracy: number; delta: number; weightBits: number };
}

export interface QuantInfo {
  checkpoint: string;
  preset: string;
  rows: QuantRow[];
}

export interface ModelInfo {
  /** What the model is: "float model", "QAT model (fake-quant simulation)", "int8 model". */
  label: string;
  file: string;
  bytes: number;
  summary: ModelSummary;
}

/** The `qat.export` metadata of an int8 model written by `qat export`. */
export interface ExportInfo extends ModelInfo {
  format: string;
  target: string;
  opset: number;
  sourceCheckpoint?: string;
  simulation: { dataset: string; samples: number; accuracy: number; run_test_accuracy: number | null };
  parity: {
    samples: number;
    agreement: number;
    export_accuracy: number;
    passed: boolean;
    host_config: Record<string, string>;
    outputs: {
      name: string;
      maxAbs: number;
      meanAbs: number;
      step: string;
      stepSize: number;
      maxSteps: number;
      withinOneStep: number;
    }[];
  };
  warnings: string[];
}

export interface LatencyStats {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

export interface DifferenceStats {
  name: string;
  maxAbs: number;
  meanAbs: number;
  refMaxAbs: number;
  maxSteps?: number;
  /** Share of values that differ at all (newer device reports). */
  changed?: number;
  /** Optional: counts of |host − board| per bin (edges has one more entry than counts). */
  histogram?: { edges: number[]; counts: number[] };
}

/** One board's row of the device report (`qat validate --json`, devices/validate.ts DeviceReport). */
export interface BoardResult {
  device: string;
  board?: string;
  arch?: string;
  samples: number;
  hostAccuracy: number;
  boardAccuracy: number;
  drift: number;
  agreement: number;
  perClass: { label: number; count: number; host: number; board: number; delta: number }[];
  output: DifferenceStats;
  layers: DifferenceStats[];
  latencyMs: LatencyStats;
  batchLatencyMs?: LatencyStats;
  batchSize: number;
  peakRssBytes: number;
  maxDrift?: number;
  exceeded: boolean;
  /** Optional: the per-sample latency of every run on the board, ms (a full histogram when present). */
  latencySamplesMs?: number[];
  /** Optional: where the latency was measured; emulated: qemu on the host, not the board's speed (with why). */
  latency?: { emulated: boolean; note?: string };
}

export interface DeviceInfo {
  file: string;
  model?: string;
  dataset?: string;
  samples: number;
  hostAccuracy: number;
  boards: BoardResult[];
  failed: { device: string; code: string; message: string }[];
}

export interface ReportData {
  /** The folder given to `qat report`. */
  root: string;
  layout: "pipeline" | "run";
  generated: string;
  float?: RunInfo;
  qat?: RunInfo;
  quant?: QuantInfo;
  sensitivity?: { file: string; report: SensitivityReport };
  export?: ExportInfo;
  /** The float eval model (model.onnx of the float run), else the QAT run's simulation model. */
  floatModel?: ModelInfo;
  device?: DeviceInfo;
  /** Why a section is empty and what to run to fill it, by section. */
  missing: Partial<Record<"training" | "quant" | "sensitivity" | "export" | "device" | "model", string>>;
}
