/**
 * What a validation takes: the evaluation set, which runtime the board uses, and the options of one run (batch,
 * layers to compare, thresholds, the host's ORT config, the fake-quant simulation, TensorRT settings).
 */
import type { SimulationRequest } from "../simulation.js";

export interface EvalSet {
  /** Inputs, sample after sample, float32. */
  inputs: Float32Array;
  /** The shape of one sample, e.g. [1, 28, 28]. */
  sampleShape: number[];
  /** Class labels, one per sample. */
  labels: ArrayLike<number>;
}

export type Runtime = "onnxruntime" | "tensorrt";

export const RUNTIMES: readonly Runtime[] = ["onnxruntime", "tensorrt"];

export interface ValidateOptions {
  /** Samples per run (default: the model's fixed batch size, else 32). */
  batchSize?: number;
  /**
   * Intermediate tensors to compare as well: value names, or "all" — every quantized activation (the
   * QuantizeLinear outputs; every node output of a float model). They are exposed as extra graph outputs of a probe
   * copy of the model, run beside the plain model on both sides.
   */
  layers?: string[] | "all";
  /** A compared tensor diverges when host and board differ by more than this many quantization steps (default 1). */
  layerThreshold?: number;
  /** Largest accuracy drop (host − board, as a fraction: 0.01 = one point) before `exceeded` is set. */
  maxDrift?: number;
  /** ORT intra-op threads on the board (default: ORT's choice). */
  threads?: number;
  /**
   * ORT session config on the host. Default: EXACT_HOST_CONFIG (src/runtime/host-config.ts), the one config the
   * host uses for exact int8 runs everywhere (parity check and validation alike), so x86 int8 kernels do not
   * saturate u8·s8 sums as ARM boards do not.
   */
  hostConfig?: Record<string, string>;
  /** The fake-quant simulation to run on the host too (see `resolveSimulation`), or why there is none. */
  simulation?: SimulationRequest;
  /**
   * How the board runs the model: onnxruntime (the installed backend, default) or tensorrt — trtexec on the board
   * builds an engine (int8 from the QDQ scales) and runs each batch. TensorRT is unverified on real Jetson hardware.
   */
  runtime?: Runtime;
  /** tensorrt: the trtexec program on the board (default /usr/src/tensorrt/bin/trtexec, else trtexec on PATH). */
  trtexec?: string;
  /** tensorrt: inference iterations per batch; the batch latency is their median (default 10). */
  trtIterations?: number;
}

/** Default of `layerThreshold`: more than one step apart is a divergence (one step is a rounding tie). */
export const DEFAULT_LAYER_THRESHOLD = 1;

/** Default of `trtIterations`. */
export const DEFAULT_TRT_ITERATIONS = 10;

/** Boards validated at once by default. */
export const DEFAULT_CONCURRENCY = 4;
