/**
 * Stages 4 and 5: QAT by distillation from the float model, and mixed precision. Both algorithms live in
 * src/quant (distill.ts, mixed-precision.ts); this file calls them with the run's data and turns what they return
 * into a candidate.
 */
import type { ImportReport } from "../../nn/import/report.js";
import type { NetModel } from "../../nn/model.js";
import { distill } from "../../quant/distill.js";
import { type CandidateMetric, chooseMixedPrecision } from "../../quant/mixed-precision.js";
import { QatTraining } from "../../quant/qat-train.js";
import type { QConfig } from "../../quant/qconfig.js";
import type { DistillKind } from "../../train/distill-loss.js";
import type { Candidate } from "./candidate.js";
import type { DistillPlan } from "./detect-metric.js";
import type { MetricValue } from "./metric.js";
import type { StageContext } from "./ptq.js";
import { ptqCandidate } from "./ptq.js";

export type StageResult = { candidate: Candidate; changed: string; details: Record<string, unknown> };

/** Softmax-KL on classifier-shaped outputs ([batch, classes]), regression (MSE) on the rest (boxes, raw scores). */
export function outputKinds(report: ImportReport): Record<string, DistillKind> {
  return Object.fromEntries(
    (report.outputs ?? []).map((p) => [
      p.name,
      p.shape.length === 2 && typeof p.shape[1] === "number" && p.shape[1] >= 2 ? "softmax" : "regression",
    ]),
  );
}

/**
 * QAT by distillation, starting from `start` (the better post-training candidate: its float weights, equalized when
 * CLE ran, and its calibrated scales, the observers chosen per tensor). The float model is the teacher; labels are
 * not used, so the stage is the same with and without them. `plan` (from the data's task, e.g. a detector's head) overrides how outputs are compared.
 */
export async function distillStage(
  start: Candidate,
  report: ImportReport,
  ctx: StageContext & { steps: number; plan?: DistillPlan },
): Promise<StageResult> {
  const float = start.float;
  const qat = await QatTraining.create(
    float,
    { preset: start.qconfig.preset, freezeBnAfter: float.buffers.length ? 1 : 0 },
    ctx.calibration,
    { seed: ctx.seed, threads: ctx.threads, initial: start.qparams },
  );
  const r = await distill(float, ctx.calibration, {
    qat,
    outputs:
      ctx.plan?.outputs ?? (report.outputs ?? []).map(({ name, offset, size }) => ({ name, offset, size })),
    kinds: ctx.plan?.kinds ?? outputKinds(report),
    steps: ctx.steps,
    seed: ctx.seed,
    threads: ctx.threads,
  });
  const names = [...qat.placement.weights, ...qat.placement.activations].flatMap((p) => [
    p.scale,
    p.zeroPoint,
  ]);
  const qparams = new Map(names.map((n) => [n, r.values.get(n) ?? start.qparams.get(n)!]));
  const metric = await ctx.evaluator.measure(r.net.eval);
  const last = r.history.at(-1);
  return {
    candidate: {
      stage: "distill",
      float,
      qconfig: qat.qconfig,
      placement: qat.placement,
      qparams,
      quant: r.net,
      metric,
    },
    changed:
      `QAT by distillation from the float model: ${r.steps} steps on ${ctx.calibration.length} samples ` +
      `(${r.segments.map((s) => `${s.name}: ${s.kind}`).join(", ")})${last ? `, final loss ${last.loss.toPrecision(3)}` : ""}`,
    details: { history: r.history, seconds: r.seconds, metric: metric.details },
  };
}

/**
 * Mixed precision: the layers that lose the most go to higher precision (8-bit weights under w4a8, else float),
 * cheapest first (src/quant/mixed-precision.ts), each step measured with the run's own held-out metric until the
 * budget is met; the final qconfig is then calibrated with the per-tensor observer choice of stage 2, which is kept
 * only if it measures better than the calibration the choice was made with (the choice minimises the output error on
 * calibration samples; on BlazeFace it lowered the held-out metric from 99.87 to 99.82, below the budget).
 */
export async function mixedPrecisionStage(
  float: NetModel,
  qconfig: QConfig,
  ctx: StageContext & { reference: number; maxDrop: number },
): Promise<StageResult> {
  // what each candidate measured, so the greedy's final one need not run over the held-out data again
  const measured = new WeakMap<object, MetricValue>();
  const metric: CandidateMetric = async (c) => {
    const m = await ctx.evaluator.measure(c.net.eval);
    measured.set(c, m);
    return m.value;
  };
  const mp = await chooseMixedPrecision(float, ctx.calibration, metric, {
    preset: qconfig.preset,
    target: ctx.reference - ctx.maxDrop,
    floatMetric: ctx.reference,
    seed: ctx.seed,
    threads: ctx.threads,
  });
  const searched = await ptqCandidate(float, mp.qconfig, ctx, "mixed-precision");
  const c = mp.candidate;
  const own = measured.get(c)!;
  const r: StageResult =
    own.value > searched.candidate.metric.value
      ? {
          candidate: {
            stage: "mixed-precision",
            float,
            qconfig: c.qconfig,
            placement: c.placement,
            qparams: c.qparams,
            quant: c.net,
            metric: own,
          },
          changed:
            `${c.placement.weights.length} weights and ${c.placement.activations.length} activations quantized ` +
            `(${mp.qconfig.preset}); observers: the qconfig's (the per-tensor choice measured ` +
            `${searched.candidate.metric.value.toFixed(2)}, lower)`,
          details: { metric: own.details },
        }
      : searched;
  const moved = mp.changes.map((c) => `${c.layer} ${c.from}-bit → ${c.to === 32 ? "float" : `${c.to}-bit`}`);
  return {
    ...r,
    changed: moved.length
      ? `raised ${moved.join(", ")} (most sensitive first, cheapest per point lost); ${r.changed}`
      : `no layer could be raised further; ${r.changed}`,
    details: {
      ...r.details,
      changes: mp.changes,
      sensitivity: mp.sensitivity,
      keepFloat: mp.keepFloat,
      weightBits: mp.weightBits,
    },
  };
}
