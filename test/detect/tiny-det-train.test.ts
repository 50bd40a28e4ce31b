import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { generateMnistDetect } from "../../src/detect/mnist-detect.js";
import { zooModel } from "../../src/nn/zoo.js";
import { detectionMapOfModel } from "../../src/pipeline/detect-eval.js";
import { exportDetector } from "../../src/pipeline/detect-export.js";
import { calibrateDetector, isDetectionRun } from "../../src/pipeline/detect-run.js";
import { DETECT_INPUT, openDetectSplit, trainDetector } from "../../src/pipeline/detect-trainer.js";
import { RunFolder } from "../../src/train/run-folder.js";

// A small, easy set (one large digit per image, no clutter) so a CPU-minute of training finds boxes.
let dir: string;
let data: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qat-tiny-det-"));
  data = join(dir, "set");
  await generateMnistDetect({
    out: data,
    train: 256,
    val: 48,
    seed: 3,
    dataDir: "../shared/data",
    scene: { maxObjects: 1, minSize: 32, maxSize: 48, maxClutter: 0 },
  });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("tiny-det: [batch, classes + 4, H/4, W/4] output, registered in the zoo", () => {
  const net = zooModel("tiny-det", { classes: 10 });
  expect(net.eval.outputs[0]!.shape).toEqual(["batch", 14, 24, 24]);
  expect(() => zooModel("tiny-det", { inputShape: [1, 90, 90] })).toThrow(/multiples of 16/);
});

test("a short run lowers the loss and finds boxes; calibrate + int8 export round-trips through ORT", async () => {
  const out = join(dir, "run");
  const r = await trainDetector(
    {
      data,
      epochs: 6,
      batchSize: 32,
      seed: 1,
      threads: 2,
      schedule: { kind: "constant", lr: 3e-3 },
    },
    { out },
  );
  const metrics = new RunFolder(out).readMetrics().filter((m) => m.kind === "epoch") as unknown as {
    trainLoss: number;
    map50: number;
  }[];
  expect(metrics).toHaveLength(6);
  expect(metrics.at(-1)!.trainLoss).toBeLessThan(0.6 * metrics[0]!.trainLoss);
  // an untrained tiny-det scores 0; after 48 steps it has found and classified digits (0.39 measured)
  expect(r.map50).toBeGreaterThan(0.15);
  expect(isDetectionRun(out)).toBe(true);
  const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
  expect(summary.val.map50).toBeCloseTo(r.map50, 12);

  // the run's model.onnx, scored independently from the file, gives the run's figure
  const val = openDetectSplit(data, "val", DETECT_INPUT);
  const again = await detectionMapOfModel(join(out, "model.onnx"), val, { stride: 4 });
  expect(again.map50).toBeCloseTo(r.map50, 6);

  const cal = await calibrateDetector({ run: out, batches: 4, threads: 2 });
  expect(cal.float.map50).toBeCloseTo(r.map50, 6);
  const file = join(dir, "tiny-det.int8.onnx");
  const ex = await exportDetector(cal.out, file, { threads: 2 });
  expect(ex.written).toBe(true);
  expect(existsSync(file)).toBe(true);
  // the int8 file decodes to (nearly) the simulation's detections, and scores like it
  expect(ex.box_agreement.compared).toBeGreaterThan(5);
  expect(ex.box_agreement.share).toBeGreaterThan(0.8);
  expect(Math.abs(ex.int8.map50 - ex.simulation.map50)).toBeLessThan(0.1);
  const fromFile = await detectionMapOfModel(file, val, { stride: 4 });
  expect(fromFile.map).toBeCloseTo(ex.int8.map, 9);
}, 600_000);
