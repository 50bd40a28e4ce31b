/** Stage 2: post-training quantization, the activation observer chosen per tensor by the output error. */
import type { Dataset } from "../../data/dataset.js";
import type { NetModel } from "../../nn/model.js";
import { placeQuant } from "../../quant/placement.js";
import type { QConfig } from "../../quant/qconfig.js";
import { type Candidate, quantized } from "./candidate.js";
import type { HeldOutEvaluator } from "./evaluator.js";
import { chooseObservers } from "./observers.js";

export interface StageContext {
  calibration: Dataset;
  evaluator: HeldOutEvaluator;
  seed: number;
  threads?: number;
}

/** Calibrate `float` under `qconfig` with the best observer per tensor; the candidate and what was chosen. */
export async function ptqCandidate(
  float: NetModel,
  qconfig: QConfig,
  ctx: StageContext,
  stage: Candidate["stage"] = "ptq",
): Promise<{ candidate: Candidate; changed: string; details: Record<string, unknown> }> {
  const placement = placeQuant(float, qconfig);
  const choice = await chooseObservers(float, placement, ctx.calibration, {
    seed: ctx.seed,
    threads: ctx.threads,
  });
  const quant = quantized(float, placement, choice.qparams);
  const metric = await ctx.evaluator.measure(quant.eval);
  const counts: Record<string, number> = {};
  for (const k of Object.values(choice.chosen)) counts[k] = (counts[k] ?? 0) + 1;
  const uniform = Object.entries(choice.uniform)
    .map(([k, e]) => `${k} ${e.toExponential(2)}`)
    .join(", ");
  return {
    candidate: { stage, float, qconfig, placement, qparams: choice.qparams, quant, metric },
    changed:
      `${placement.weights.length} weights and ${placement.activations.length} activations quantized (${qconfig.preset}); ` +
      `observers per tensor: ${Object.entries(counts)
        .map(([k, n]) => `${k} ×${n}`)
        .join(", ")}`,
    details: {
      observers: choice.chosen,
      outputError: { uniform: choice.uniform, chosen: choice.error, summary: uniform },
      metric: metric.details,
    },
  };
}
