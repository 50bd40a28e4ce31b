/**
 * The networks the throughput benches train: zoo models by name, and "bn-residual", PyTorch's BN + residual conv
 * net (bench/torch/export_bn_residual.py) exported to ONNX at 3×32×32 and imported as `qat train --from` does.
 * Each comes with the inputs' normalisation prepended (random 0–255 images) and calibration data.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Dataset } from "../src/data/dataset.js";
import { importModel } from "../src/nn/import/index.js";
import type { NetModel } from "../src/nn/model.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import { randomImages } from "./random-data.js";
import { runTorchScript } from "./torch/python.js";

/** The imported model's name; its PyTorch twin has the same name in bench/torch/models.py. */
export const IMPORTED = "bn-residual";

export function benchNet(name: string): { net: NetModel; data: Dataset } {
  let net: NetModel;
  if (name === IMPORTED) {
    const dir = mkdtempSync(join(tmpdir(), "qat-bench-import-"));
    try {
      runTorchScript("export_bn_residual.py", [dir, "--size", "32", "--batch", "2"]);
      net = importModel(join(dir, "bn_residual.onnx")).net;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else net = zooModel(name, { seed: 1 });
  const data = randomImages(net.inputShape, 256, 7);
  prependNormalization(net, data.stats().mean, data.stats().std);
  return { net, data };
}
