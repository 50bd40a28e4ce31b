/**
 * `quantizeModel` on a detector and a YOLO folder: the detection metric plugs in (mAP50-95 of the CenterNet decoder
 * against the val labels, the figure `qat eval` gives), every stage of the log is judged in mAP points, and
 * distillation compares heatmaps as sigmoids and box distances by regression. The detector is built by hand so its
 * mAP is known without training: 4×4 bright squares on a 16×16 noisy canvas, found by a stride-4 mean.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LabeledBox } from "../../src/detect/boxes.js";
import { yoloLabelText } from "../../src/detect/mnist-detect.js";
import { loadDetectionTensors } from "../../src/detect/tensors.js";
import { openYoloDataset } from "../../src/detect/yolo.js";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32 } from "../../src/onnx/tensor.js";
import { detectionMapOfModel } from "../../src/pipeline/detect-eval.js";
import { centerNetDistillPlan, centerNetHead } from "../../src/pipeline/quantize/detect-metric.js";
import { QuantizeError, quantizeModel } from "../../src/pipeline/quantize/index.js";
import { seeded } from "../helpers/random.js";

const SIZE = 16;
const STRIDE = 4;
let tmp: string;
let data: string;
let model: string;

/** One image: noise 0–40, one or two squares of 160–255; every fourth square sits 2 px off the grid (missed). */
function scene(r: () => number, n: number): { px: Uint8Array; objects: LabeledBox[] } {
  const px = Uint8Array.from({ length: SIZE * SIZE }, () => Math.floor(r() * 40));
  const objects: LabeledBox[] = [];
  const cells = SIZE / STRIDE;
  const used = new Set<number>();
  for (let k = 0; k < 1 + (n % 2); k++) {
    let cell = Math.floor(r() * cells * cells);
    while (used.has(cell)) cell = (cell + 1) % (cells * cells);
    used.add(cell);
    const shift = (n + k) % 4 === 3 && cell % cells < cells - 1 ? 2 : 0;
    const [x0, y0] = [(cell % cells) * STRIDE + shift, Math.floor(cell / cells) * STRIDE];
    const v = 160 + Math.floor(r() * 96);
    for (let y = y0; y < y0 + STRIDE; y++) for (let x = x0; x < x0 + STRIDE; x++) px[y * SIZE + x] = v;
    objects.push({ cls: 0, box: { x1: x0, y1: y0, x2: x0 + STRIDE, y2: y0 + STRIDE } });
  }
  return { px, objects };
}

function writeYolo(root: string, counts: { train: number; val: number }): void {
  const r = seeded(5);
  for (const split of ["train", "val"] as const) {
    mkdirSync(join(root, "images", split), { recursive: true });
    mkdirSync(join(root, "labels", split), { recursive: true });
    for (let n = 0; n < counts[split]; n++) {
      const { px, objects } = scene(r, n);
      const png = encodePng({ width: SIZE, height: SIZE, data: px, channels: 1, depth: 8 });
      writeFileSync(join(root, "images", split, `img${n}.png`), png);
      writeFileSync(join(root, "labels", split, `img${n}.txt`), yoloLabelText(objects, SIZE, SIZE));
    }
  }
  writeFileSync(join(root, "data.yaml"), "train: images/train\nval: images/val\nnc: 1\nnames: ['square']\n");
}

/**
 * A CenterNet head on 0–255 pixels: heat logit = 20 · (cell mean / 255) − 10 (+10 on a square, about −8 on noise),
 * box distances softplus⁻¹(½) (the cell itself) nudged by three seeded features, so boxes are close but not exact
 * and quantization moves them across the high IoU thresholds.
 */
function writeDetector(file: string): void {
  const r = seeded(11);
  const g = new Graph();
  g.name = "squares-det";
  g.inputs.push({ name: "image", dtype: "float32", shape: ["batch", 1, SIZE, SIZE] });
  const w1 = new Float32Array(4 * 16);
  for (let i = 0; i < 16; i++) w1[i] = 1 / (16 * 255);
  for (let i = 16; i < 64; i++) w1[i] = (2 * r() - 1) / (8 * 255);
  const feat = g.op(
    "Conv",
    [
      "image",
      g.constant("conv.weight", f32([4, 1, 4, 4], w1)),
      g.constant("conv.bias", f32([4], [0, 0.2, 0.2, 0.2])),
    ],
    { strides: [STRIDE, STRIDE] },
    { name: "conv" },
  );
  const relu = g.op("Relu", [feat], {}, { name: "relu" });
  const w2 = new Float32Array(5 * 4);
  w2[0] = 20;
  for (let o = 1; o < 5; o++) for (let c = 1; c < 4; c++) w2[o * 4 + c] = 0.6 * (2 * r() - 1);
  const b2 = [-10, ...Array.from({ length: 4 }, () => Math.log(Math.expm1(0.5)))];
  g.op(
    "Conv",
    [relu, g.constant("head.weight", f32([5, 4, 1, 1], w2)), g.constant("head.bias", f32([5], b2))],
    {},
    { name: "head", output: "logits" },
  );
  g.outputs.push({ name: "logits", dtype: "float32", shape: ["batch", 5, SIZE / STRIDE, SIZE / STRIDE] });
  writeFileSync(file, encodeModel(modelOf(g, { "": 17 })));
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "qat-quantize-detect-"));
  data = join(tmp, "squares");
  writeYolo(data, { train: 96, val: 48 });
  model = join(tmp, "squares-det.onnx");
  writeDetector(model);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const base = () => ({
  model,
  data,
  evalSamples: 48,
  calibrationSamples: 96,
  distillSteps: 30,
  threads: 2,
});

describe("quantizeModel on a detector with a YOLO folder", () => {
  it("judges every stage by mAP50-95 of the val labels, the figure the detection eval gives", async () => {
    const out = join(tmp, "run");
    // 4-bit weights lose mAP post-training, so distillation (the only later stage allowed) runs
    const r = await quantizeModel({ ...base(), out, preset: "w4a8", maxDrop: 0, stages: ["distill"] });
    expect(r.metric).toEqual({ name: "mAP50-95", unit: "%", labelled: true });
    const val = loadDetectionTensors(openYoloDataset(data, "val"), [1, SIZE, SIZE]);
    const float = await detectionMapOfModel(model, val, { stride: STRIDE });
    // the stage log's float figure is the detection eval's, and it is neither 0 nor 100 (a quarter of squares missed)
    expect(r.reference).toBeCloseTo(100 * float.map, 9);
    expect(r.reference).toBeGreaterThan(30);
    expect(r.reference).toBeLessThan(95);
    const ref = r.stages.find((s) => s.stage === "reference")!;
    expect((ref.details as { map50: number }).map50).toBeCloseTo(100 * float.map50, 9);
    const done = r.stages.filter((s) => s.status === "done" && s.stage !== "export");
    expect(done.map((s) => s.stage)).toEqual(["reference", "ptq", "distill"]);
    for (const s of done) {
      expect(s.metric).toBeGreaterThan(0);
      expect((s.details.metric ?? s.details) as { map50: number }).toHaveProperty("map50");
    }
    const distill = r.stages.find((s) => s.stage === "distill")!;
    expect(distill.changed).toContain("logits heatmap: sigmoid, logits boxes: regression");
    // 30 steps against the float teacher win back what PTQ lost (67.1 → 72.2 measured, float 70.0)
    const ptq = r.stages.find((s) => s.stage === "ptq")!;
    expect(ptq.drop).toBeGreaterThan(0);
    expect(distill.metric).toBeGreaterThan(ptq.metric!);
    expect(r.exportedFrom).toBe("distill");
    // the written int8 file, scored independently, lands within a point of the candidate it was exported from
    const int8 = await detectionMapOfModel(r.files.model, val, { stride: STRIDE });
    expect(Math.abs(100 * int8.map - r.final)).toBeLessThan(1);
    expect(JSON.parse(readFileSync(r.files.stages, "utf8")).metric.name).toBe("mAP50-95");
  }, 60_000);

  it("splits the head for distillation: class heatmaps first, then the four distance planes", () => {
    const outputs = [{ name: "logits", shape: ["batch", 5, 4, 4], offset: 0, size: 80 }];
    const head = centerNetHead(outputs, 1, SIZE, SIZE);
    expect(head).toEqual({ output: "logits", classes: 1, rows: 4, cols: 4, stride: 4 });
    expect(centerNetDistillPlan(outputs, head)).toEqual({
      outputs: [
        { name: "logits heatmap", offset: 0, size: 16 },
        { name: "logits boxes", offset: 16, size: 64 },
      ],
      kinds: { "logits heatmap": "sigmoid", "logits boxes": "regression" },
    });
  });

  it("refuses a detector whose output does not fit the data's classes, before writing anything", async () => {
    const yaml = readFileSync(join(data, "data.yaml"), "utf8");
    const two = join(tmp, "two-classes");
    writeYolo(two, { train: 4, val: 4 });
    writeFileSync(join(two, "data.yaml"), yaml.replace("nc: 1", "nc: 2").replace("['square']", "['a', 'b']"));
    const out = join(tmp, "refused");
    const run = quantizeModel({ ...base(), data: two, out });
    await expect(run).rejects.toThrow(QuantizeError);
    await expect(run).rejects.toThrow(/\[batch, 6, rows, cols\].*'logits' \[batch, 5, 4, 4\]/);
    expect(() => readFileSync(join(out, "stages.json"))).toThrow();
  });
});
