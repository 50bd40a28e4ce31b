// A qconfig says, per layer, how weights and activations are quantized. Start from a preset, override a layer,
// place the fake-quant nodes, calibrate the starting scales, then train (QAT) through them.
import {
  applyQuant,
  buildTrainingStep,
  calibrate,
  intRange,
  layerConfig,
  loadStateDict,
  lowerFakeQuant,
  placementTable,
  placeQuant,
  preset,
  quantizableLayers,
  validateQConfig,
} from "qat";
import { accuracy, bars, barsModel, runEpochs } from "./bars.js";

const pct = (a: number) => `${(100 * a).toFixed(1)}%`;
const train = bars(600, 1);
const test = bars(300, 2);

// 1. a trained float model
const net = barsModel();
const sgd = { kind: "sgd", momentum: 0.9 } as const;
const float = await runEpochs(buildTrainingStep(net, { optimizer: sgd }), train, { epochs: 3, lr: 0.05 });
loadStateDict(net, float.values("param"));
console.log(`float: test accuracy ${pct(await accuracy(net, test))}`);

// 2. the qconfig: ORT's CPU defaults (uint8 activations, int8 per-channel weights), 2-bit weights for "fc"
const q = preset("ort-cpu");
q.layers.fc = { weight: { bits: 2 } };
validateQConfig(q, quantizableLayers(net));
for (const layer of quantizableLayers(net)) {
  const { weight, activation } = layerConfig(q, layer);
  const [w, a] = [intRange(weight), intRange(activation)];
  console.log(
    `${layer}: weights ${weight.bits}-bit ${w.dtype} ${w.qmin}…${w.qmax} ${weight.perChannel ? "per channel" : "per tensor"}, ` +
      `activations ${activation.bits}-bit ${a.dtype} ${a.qmin}…${a.qmax}`,
  );
}

// 3. where fake quantization goes, and starting scales from calibration batches
const placement = placeQuant(net, q);
for (const row of placementTable(placement)) console.log(`  ${row.kind} ${row.tensor} → ${row.scale}`);
const qparams = await calibrate(net, placement, train, { batches: 8 });
const fq = applyQuant(net, placement, qparams);
// "basic": ORT runs the Q/DQ pairs as written (no integer kernels swapped in), as qat train --qat does
const session = { optimization: "basic" as const };
console.log(
  `calibrated (post-training quantization): test accuracy ${pct(await accuracy(fq, test, undefined, session))}`,
);

// 4. quantization-aware training: the training step of the fake-quantized model, lowered to Q/DQ
const step = buildTrainingStep(fq, { optimizer: sgd });
lowerFakeQuant(step.model.graph);
const qat = await runEpochs(step, train, { epochs: 3, lr: 0.005, session });
console.log(`after QAT: test accuracy ${pct(await accuracy(fq, test, qat, session))}`);
