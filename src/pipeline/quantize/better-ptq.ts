/**
 * Stage 3: better post-training quantization. Cross-layer equalization (Nagel et al. 2019) evens out consecutive
 * layers (depthwise → pointwise pairs above all): data-aware, the channel ranges it evens are those of the activation
 * between the two layers, observed on the calibration data, rather than the first layer's weight ranges (with
 * per-channel weights the first layer's weight ranges do not matter; the per-tensor activation between the layers
 * does: on BlazeFace one depthwise output channel spans [−322, 0] where the median channel spans 6). AdaRound
 * (Nagel et al. 2020) learns each weight's rounding on its layer's output reconstruction, and empirical bias
 * correction removes the mean output shift the chosen rounding leaves. Activations are then calibrated as in stage 2 on the changed network.
 */
import { loadStateDict, type NetModel } from "../../nn/model.js";
import { cloneGraph } from "../../onnx/ir.js";
import { adaround } from "../../quant/adaround.js";
import { correctBias } from "../../quant/bias-correction.js";
import { absMax, channelRanges } from "../../quant/calibrate.js";
import { CleError, clePairInputs, equalizeCrossLayer } from "../../quant/cle.js";
import { placeQuant } from "../../quant/placement.js";
import type { QConfig } from "../../quant/qconfig.js";
import { type Candidate, quantized } from "./candidate.js";
import { chooseObservers } from "./observers.js";
import type { StageContext } from "./ptq.js";

/** Per-channel max |x| of what each CLE pair's second layer reads, on the calibration data. */
async function pairInputRanges(float: NetModel, ctx: StageContext): Promise<Map<string, Float32Array>> {
  const inputs = clePairInputs(float);
  const ranges = await channelRanges(float, inputs, ctx.calibration, {
    batches: 8,
    batchSize: 64,
    seed: ctx.seed,
    threads: ctx.threads,
  });
  return new Map([...ranges].map(([v, r]) => [v, absMax(r)]));
}

export async function betterPtqCandidate(
  float: NetModel,
  qconfig: QConfig,
  ctx: StageContext,
  opts: { iterations: number; cle?: boolean },
): Promise<{ candidate: Candidate; changed: string; details: Record<string, unknown> }> {
  const done: string[] = [];
  let net = float;
  let cle: Record<string, unknown> = {};
  if (opts.cle === false) {
    cle = { off: true };
    done.push("CLE off");
  } else
    try {
      const inputMax = await pairInputRanges(float, ctx);
      const r = equalizeCrossLayer(float, { inputMax });
      net = r.model;
      cle = { pairs: r.pairs, skipped: r.skipped, iterations: r.iterations, dataAware: true };
      done.push(`CLE equalized ${r.pairs.length} layer pair(s) on their observed activation ranges`);
    } catch (e) {
      if (!(e instanceof CleError)) throw e;
      cle = { error: e.message };
      done.push(`CLE not applied (${e.message})`);
    }
  const placement = placeQuant(net, qconfig);
  const samples = Math.min(512, ctx.calibration.length);
  const holdOut = Math.max(1, Math.min(128, Math.floor(samples / 4)));
  const ada = await adaround(net, ctx.calibration, {
    placement,
    iterations: opts.iterations,
    samples,
    holdOut,
    seed: ctx.seed,
    threads: ctx.threads,
  });
  done.push(
    `AdaRound on ${ada.layers.length} layer(s)${ada.skipped.length ? `, ${ada.skipped.length} rounded to nearest` : ""}`,
  );
  const bc = await correctBias(net, ctx.calibration, {
    placement,
    quantized: { weights: ada.weights, qparams: ada.qparams },
    seed: ctx.seed,
    threads: ctx.threads,
  });
  done.push(`bias corrected on ${bc.layers.length} layer(s)`);
  const tuned: NetModel = { ...bc.model, train: cloneGraph(bc.model.train), eval: cloneGraph(bc.model.eval) };
  loadStateDict(tuned, ada.weights);
  // bias correction may add biases: place again on the final network, then keep AdaRound's weight grids
  const finalPlacement = placeQuant(tuned, qconfig);
  const choice = await chooseObservers(tuned, finalPlacement, ctx.calibration, {
    seed: ctx.seed,
    threads: ctx.threads,
  });
  const qparams = new Map(choice.qparams);
  for (const [k, v] of ada.qparams) qparams.set(k, v);
  const quant = quantized(tuned, finalPlacement, qparams);
  const metric = await ctx.evaluator.measure(quant.eval);
  return {
    candidate: {
      stage: "better-ptq",
      float: net,
      qconfig,
      placement: finalPlacement,
      qparams,
      quant,
      metric,
    },
    changed: done.join("; "),
    details: {
      cle,
      adaround: { layers: ada.layers, skipped: ada.skipped },
      biasCorrection: bc.layers.map((l) => ({
        layer: l.layer,
        into: l.into,
        meanAbsShift: l.shift.reduce((a, v) => a + Math.abs(v), 0) / Math.max(1, l.shift.length),
      })),
      observers: choice.chosen,
      metric: metric.details,
    },
  };
}
