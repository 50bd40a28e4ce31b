/**
 * The shape of a drift report: per board (accuracy of host and board, agreement, per-class deltas, output and
 * per-layer differences in quantization steps, latency, memory, the fake-quant simulation) and per fleet (one row
 * per board). These are the JSON fields `qat validate --json` prints and `qat report --device-report` reads.
 */
import type { TrtEngineInfo } from "../client.js";
import type { StepKind } from "../layers.js";
import type { Runtime } from "./options.js";

export interface Stats {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

export interface Difference {
  name: string;
  maxAbs: number;
  meanAbs: number;
  /** The largest |value| on the host: maxAbs / refMaxAbs is the relative difference. */
  refMaxAbs: number;
  /** maxAbs in quantization steps (see stepKind). */
  maxSteps?: number;
  /** How one step is known: integer (a QuantizeLinear output), dequantize, accumulator, range (see layers.ts). */
  stepKind?: StepKind;
  /** One step in the tensor's units (the largest, when per channel). */
  stepSize?: number;
  /** dequantize/accumulator: the step per channel; integer: the QuantizeLinear's scale. */
  scale?: number | number[];
  /** Share of values that differ at all. */
  changed?: number;
  /** Counts of |host − board| per bin: edges (one more than counts) at 0, ½, 1, 2, 4, … steps (stepSize). */
  histogram?: { edges: number[]; counts: number[] };
}

/** A compared intermediate tensor (or a graph output), with the layer that computes it. */
export interface LayerDrift extends Difference {
  /** The node naming the layer (its Conv/Gemm/MatMul when it has one) and its op. */
  node: string;
  op: string;
  /** Every node of the layer's group (ORT fuses them into one integer kernel), and their ops. */
  nodes: string[];
  ops: string[];
  /** maxSteps > the threshold. */
  diverged: boolean;
  /** A graph output (compared anyway; last in the attribution order). */
  output?: boolean;
}

/** The first layer, in graph order, whose values differ by more than the threshold. */
export interface FirstDivergence {
  tensor: string;
  node: string;
  op: string;
  ops: string[];
  maxSteps: number;
  stepKind: StepKind;
  /** Share of the tensor's values that differ. */
  changed: number;
  threshold: number;
}

export interface ClassRow {
  label: number;
  count: number;
  host: number;
  board: number;
  /** board − host accuracy on this class. */
  delta: number;
}

/** The fake-quant simulation on the host: its accuracy and agreement with the host, or why it did not run. */
export type HostSimulation =
  | {
      available: true;
      /** The QAT checkpoint it ran. */
      source: string;
      step?: number;
      note?: string;
      accuracy: number;
      /** Share of samples whose top-1 class is the simulation's. */
      agreementWithHost: number;
    }
  | { available: false; reason: string };

/** The fake-quant simulation's side of one board's report. */
export type SimulationReport =
  | (Extract<HostSimulation, { available: true }> & {
      agreementWithBoard: number;
      /** simulation − board accuracy (positive: the board is worse than what QAT simulated). */
      drift: number;
    })
  | Extract<HostSimulation, { available: false }>;

/**
 * Where the latency was measured. Emulated: qemu-user translating the board's instructions on the host's CPU — a
 * figure of the emulator and the host, not of the board (qemu's slowdown depends on the instruction mix, so it does
 * not scale to the real board by a constant factor either).
 */
export type LatencySource =
  | { emulated: false }
  | {
      emulated: true;
      /** The emulator and its version: "qemu-aarch64-static 7.2.22". */
      emulator: string;
      /** qemu's -cpu model, and the real board's CPU it stands for. */
      cpu: string;
      realCpu: string;
      /** The host CPU that ran the translated code. */
      hostCpu: string;
      /** One sentence for people: what the figures are and are not. */
      note: string;
    };

export interface DeviceReport {
  device: string;
  board?: string;
  arch?: string;
  runtime: Runtime;
  samples: number;
  hostAccuracy: number;
  boardAccuracy: number;
  /** host − board accuracy (positive: the board is worse). */
  drift: number;
  /** Share of samples whose top-1 class is the same on both. */
  agreement: number;
  perClass: ClassRow[];
  output: Difference;
  /** The compared intermediate tensors, in graph order. */
  layers: LayerDrift[];
  /** With layers: the first diverging layer (null: none diverged; graph outputs included). */
  firstDivergence?: FirstDivergence | null;
  layerThreshold?: number;
  /**
   * With layers: largest |Δ| of the final output between the probe copy (tensors exposed) and the plain model, on
   * each side. 0 means exposing the tensors changed nothing ORT computes.
   */
  probe?: { host: number; board: number };
  simulation?: SimulationReport;
  /** Per-sample latency on the board (batch time / batch size), ms. */
  latencyMs: Stats;
  /** Where the latency was measured: on the board, or under an emulator on the host (then not the board's speed). */
  latency?: LatencySource;
  /** The same, for every batch run (what the percentiles are taken over). */
  latencySamplesMs: number[];
  batchLatencyMs: Stats;
  batchSize: number;
  /** The board agent's peak resident memory, bytes (tensorrt: the trtexec processes', sampled). */
  peakRssBytes: number;
  /** tensorrt: the engine trtexec built and its GPU compute time per batch. */
  tensorrt?: TrtEngineInfo & { gpuComputeMs: Stats | null };
  maxDrift?: number;
  /** drift > maxDrift: the CLI exits 1. */
  exceeded: boolean;
}

export interface FleetRow {
  device: string;
  report?: DeviceReport;
  /** Why this board has no report (cannot connect, agent missing, ...). */
  error?: { code: string; message: string };
}

export interface FleetReport {
  rows: FleetRow[];
  hostAccuracy: number;
  samples: number;
  runtime: Runtime;
  /** The fake-quant simulation on the host (when asked for). */
  simulation?: HostSimulation;
  /** Some board drifted more than maxDrift, or failed. */
  exceeded: boolean;
  failed: number;
}
