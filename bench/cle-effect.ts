/**
 * What cross-layer equalization brings to an imported model's post-training quantization (issue 15, must-show 3):
 * the same PTQ (ort-cpu, the observer chosen per tensor as `qat quantize` stage 2 does) on the model as imported,
 * after weight-range CLE (Nagel et al. 2019) and after data-aware CLE (the ranges of the activation between each
 * pair, observed on the calibration data), each scored against its own float model on the held-out crops: SQNR (dB)
 * and cosine per output, as `qat quantize` measures them.
 *
 *   npm run build && node dist/bench/cle-effect.js [--model ../shared/models/blazeface-front-128.onnx]
 *     [--data ../shared/data/images] [--scale 0.00784313725490196] [--mean 1] [--threads 2]
 *
 * The data is split and preprocessed as `qat quantize` does (1024 calibration crops, 1000 other crops held out, seed
 * 0). Prints a table and, last, one JSON object.
 */

import { importModel } from "../src/nn/import/index.js";
import type { NetModel } from "../src/nn/model.js";
import { openQuantizeData } from "../src/pipeline/quantize/data.js";
import { HeldOutEvaluator } from "../src/pipeline/quantize/evaluator.js";
import { fidelityMetric } from "../src/pipeline/quantize/metric.js";
import { chooseObservers } from "../src/pipeline/quantize/observers.js";
import { absMax, channelRanges } from "../src/quant/calibrate.js";
import { clePairInputs, equalizeCrossLayer } from "../src/quant/cle.js";
import { placeQuant } from "../src/quant/placement.js";
import { applyQuant } from "../src/quant/prepare.js";
import { qconfigFrom } from "../src/quant/qconfig.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};

async function main(): Promise<void> {
  const model = arg("model", "../shared/models/blazeface-front-128.onnx");
  const threads = Number(arg("threads", "2"));
  const { net, report } = importModel(model, { outputs: "all", seed: 0 });
  const input = { name: net.input, sampleShape: net.inputShape, layout: report.input.layout };
  const data = await openQuantizeData(arg("data", "../shared/data/images"), input, {
    preprocess: { scale: Number(arg("scale", "0.00784313725490196")), mean: [Number(arg("mean", "1"))] },
    evalSamples: 1000,
    calibrationSamples: 1024,
    seed: 0,
  });
  const ranges = await channelRanges(net, clePairInputs(net), data.calibration, {
    batches: 8,
    batchSize: 64,
    seed: 0,
    threads,
  });
  const inputMax = new Map([...ranges].map(([v, r]) => [v, absMax(r)]));
  const variants: [string, NetModel][] = [
    ["no CLE", net],
    ["weight-range CLE", equalizeCrossLayer(net).model],
    ["data-aware CLE", equalizeCrossLayer(net, { inputMax }).model],
  ];
  const rows: { variant: string; metric: number; outputs: Record<string, Record<string, number>> }[] = [];
  for (const [variant, float] of variants) {
    // each variant against its own float model (CLE keeps the function; this keeps float rounding out of it)
    const ev = await HeldOutEvaluator.create(float.eval, float.input, data.heldOut, fidelityMetric, threads);
    const placement = placeQuant(float, qconfigFrom("ort-cpu"));
    const choice = await chooseObservers(float, placement, data.calibration, { seed: 0, threads });
    const m = await ev.measure(applyQuant(float, placement, choice.qparams).eval);
    const outputs = m.details.outputs as Record<string, Record<string, number>>;
    rows.push({ variant, metric: m.value, outputs });
    console.log(
      `${variant.padEnd(17)} lowest cosine ${m.value.toFixed(3)}  ` +
        Object.entries(outputs)
          .map(([k, o]) => `${k} ${o.sqnrDb!.toFixed(2)} dB`)
          .join("  "),
    );
  }
  console.log(JSON.stringify({ model, rows }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
