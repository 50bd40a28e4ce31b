// Train the bars model of bars.ts: one ONNX graph per training step (forward, loss, backward, SGD update).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildTrainingStep, encodeModel, loadStateDict, modelOf } from "qat";
import { accuracy, bars, barsModel, runEpochs } from "./bars.js";

const train = bars(600, 1);
const test = bars(300, 2);
const net = barsModel();
console.log(`parameters: ${net.params.join(", ")}`);
console.log(`before training: test accuracy ${(100 * (await accuracy(net, test))).toFixed(1)}%`);

const step = buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } });
console.log(`training step graph: ${step.model.graph.nodes.length} ONNX nodes`);
const runner = await runEpochs(step, train, { epochs: 3, lr: 0.05 });
console.log(`after training: test accuracy ${(100 * (await accuracy(net, test, runner))).toFixed(1)}%`);

// Put the trained values into the model and write its evaluation graph: a plain ONNX file that
// `qat inspect`, `qat eval` and `qat train --from` take like any other model.
loadStateDict(net, runner.values("param"));
const file = join(mkdtempSync(join(tmpdir(), "qat-guide-")), "bars.onnx");
writeFileSync(file, encodeModel(modelOf(net.eval)));
console.log(`wrote ${file}`);
