/**
 * A quantized candidate a stage produces: the float weights it quantizes (CLE and AdaRound change them), the
 * placement and quantization parameters, the fake-quantized model they give, and its held-out metric. The run keeps
 * the best candidate seen; the export stage exports it.
 */
import type { NetModel } from "../../nn/model.js";
import type { Tensor } from "../../onnx/tensor.js";
import type { Placement } from "../../quant/placement.js";
import { applyQuant } from "../../quant/prepare.js";
import type { QConfig } from "../../quant/qconfig.js";
import type { MetricValue } from "./metric.js";
import type { StageName } from "./types.js";

export interface Candidate {
  stage: StageName;
  /**
   * The float network the candidate reproduces, value for value: the imported model, or after CLE its equalized
   * twin (same function, channels rescaled between layer pairs), which per-layer errors must compare against.
   */
  float: NetModel;
  qconfig: QConfig;
  placement: Placement;
  qparams: Map<string, Tensor>;
  /** The fake-quantized model (its eval graph is what the int8 model computes). */
  quant: NetModel;
  metric: MetricValue;
}

/** The fake-quantized model of a float model with its placement and quantization parameters. */
export function quantized(float: NetModel, placement: Placement, qparams: Map<string, Tensor>): NetModel {
  return applyQuant(float, placement, qparams);
}

/** The better of two candidates (the later one on a tie: it is the one the stages worked on). */
export function better(a: Candidate | undefined, b: Candidate): Candidate {
  return !a || b.metric.value >= a.metric.value ? b : a;
}
