import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prependNormalization } from "../../src/nn/normalize.js";
import { zooModel } from "../../src/nn/zoo.js";
import { calibrate } from "../../src/quant/calibrate.js";
import { placementTable, placeQuant } from "../../src/quant/placement.js";
import { applyQuant } from "../../src/quant/prepare.js";
import { preset } from "../../src/quant/qconfig.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { synthDataset } from "../quant/fixtures.js";

export const tempDir = (): string => mkdtempSync(join(tmpdir(), "qat-export-"));

/**
 * A QAT checkpoint as `qat train --qat` writes it (eval graph with Q/DQ, `quant` metadata with qconfig and
 * placement), made without training: the zoo model's initial weights, calibrated on random images.
 */
export async function qatCheckpoint(
  dir: string,
  model: string,
  presetName: string,
  seed = 3,
): Promise<string> {
  const net = zooModel(model, { seed });
  prependNormalization(net, new Array(net.inputShape[0]).fill(127), new Array(net.inputShape[0]).fill(70));
  const qconfig = preset(presetName);
  const placement = placeQuant(net, qconfig);
  const qp = await calibrate(net, placement, synthDataset(net.inputShape, 64, seed), {
    batches: 2,
    batchSize: 32,
    threads: 1,
  });
  const q = applyQuant(net, placement, qp, { bnFrozen: true });
  const file = join(dir, `${model}-${presetName}.onnx`);
  saveCheckpoint(file, {
    graph: q.eval,
    state: new Map(),
    meta: {
      position: { epoch: 1, batch: 0, step: 10 },
      config: { data: "synth" },
      quant: { qconfig, placement: placementTable(placement) },
    },
  });
  return file;
}

export { synthDataset };
