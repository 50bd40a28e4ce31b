// Bring a float ONNX model from another framework (here mnist-8.onnx, a CNTK export at opset 8 with its batch
// fixed at 1) into qat, see what will train, and fine-tune it: what `qat import` and `qat train --from` do.
// Run from the repository root, with ../shared beside it.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatImportReport, importModel, train } from "qat";

const file = "../shared/models/mnist-8.onnx";
const { net, report } = importModel(file);
console.log(formatImportReport(report));
console.log(
  `train graph: ${net.train.nodes.length} nodes, input [batch, ${net.inputShape}], output ${net.output}`,
);

// Fine-tune it on MNIST, as `qat train --from` does (Adam at lr 1e-4 unless told otherwise): 50 steps here.
const out = join(mkdtempSync(join(tmpdir(), "qat-guide-")), "mnist-8");
const r = await train(
  { from: file, data: "mnist", dataDir: "../shared/data", maxSteps: 50, evalLimit: 1000 },
  { out },
);
console.log(
  `after ${r.steps} steps: test accuracy ${(100 * r.test_accuracy).toFixed(2)}% (first 1000 test images)`,
);
console.log(`run folder: ${r.run}`);
