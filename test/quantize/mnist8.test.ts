/**
 * `quantizeModel` on a real model written by others: mnist-8 (CNTK, opset 8, raw 0–255 pixels, batch fixed at 1 by
 * a Reshape constant), with MNIST labels and without. Small data (hundreds of samples) keeps it quick.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { loadModel } from "../../src/onnx/codec.js";
import { type QuantizeResult, quantizeModel } from "../../src/pipeline/quantize/index.js";
import { renderQuantizeSummary } from "../../src/report/quantize-summary.js";
import { DATA, MODELS } from "../helpers/paths.js";

const MNIST8 = join(MODELS, "mnist-8.onnx");
const tmp = mkdtempSync(join(tmpdir(), "qat-quantize-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const small = { evalSamples: 300, calibrationSamples: 256, threads: 2 };

describe("quantizeModel on mnist-8 with MNIST labels", () => {
  let r: QuantizeResult;
  beforeAll(async () => {
    r = await quantizeModel({
      model: MNIST8,
      data: join(DATA, "mnist"),
      out: join(tmp, "labelled"),
      maxDrop: 1,
      ...small,
    });
  }, 300_000);

  it("measures float top-1 accuracy on held-out test images, stops at PTQ within 1 point and says so", () => {
    expect(r.metric).toEqual({ name: "top-1 accuracy", unit: "%", labelled: true });
    expect(r.reference).toBeGreaterThan(97); // mnist-8 scores 98.91% on the whole test set
    expect(r.stages.map((s) => [s.stage, s.status])).toEqual([
      ["reference", "done"],
      ["ptq", "done"],
      ["export", "done"],
    ]);
    const ptq = r.stages[1]!;
    expect(ptq.withinBudget).toBe(true);
    expect(ptq.drop).toBeLessThanOrEqual(1);
    expect(r.exportedFrom).toBe("ptq");
    expect(r.final).toBe(ptq.metric);
    expect(ptq.details.observers).toBeTruthy();
    expect((r.stages[0]!.details as { top5: number }).top5).toBeGreaterThan(99);
    for (const s of r.stages) expect(s.seconds).toBeGreaterThan(0);
  });

  it("writes the stage log and per-layer errors; the summary page shows every stage and layer", async () => {
    const log = JSON.parse(readFileSync(r.files.stages, "utf8")) as QuantizeResult;
    expect(log.stages.map((s) => s.stage)).toEqual(["reference", "ptq", "export"]);
    expect(log.final).toBeCloseTo(r.final, 9);
    expect(r.layers.map((l) => l.layer)).toHaveLength(3);
    // 8-bit layers of a well-behaved CNN keep their outputs far above the quantization noise
    for (const l of r.layers) expect(l.sqnrDb).toBeGreaterThan(25);
    const html = await renderQuantizeSummary(r);
    for (const s of ["reference", "ptq", "export", ...r.layers.map((l) => l.layer)])
      expect(html).toContain(s);
    expect(html).toContain("within budget");
  });

  it("is a drop-in replacement: same input and output names and declared shapes, runs in plain onnxruntime-node", async () => {
    const original = loadModel(MNIST8).graph;
    const int8 = loadModel(r.files.model).graph;
    const decl = (vs: { name: string; shape?: unknown[] }[]) => vs.map((v) => [v.name, v.shape]);
    expect(decl(int8.inputs.filter((v) => !int8.initializers.has(v.name)))).toEqual(
      decl(original.inputs.filter((v) => !original.initializers.has(v.name))),
    );
    expect(decl(int8.outputs)).toEqual(decl(original.outputs));
    expect(int8.nodes.some((n) => n.opType === "QuantizeLinear")).toBe(true);
    // the same raw pixels into both files, at the batch of 1 they declare: the same class on (nearly) every image
    const test = await openDataset(join(DATA, "mnist"), { split: "test" });
    const [fs, qs] = [
      await ort.InferenceSession.create(MNIST8),
      await ort.InferenceSession.create(r.files.model),
    ];
    const x = new Float32Array(784);
    const y = new BigInt64Array(1);
    let agree = 0;
    const n = 100;
    const argmax = (d: Float32Array) => d.indexOf(Math.max(...d));
    for (let i = 0; i < n; i++) {
      test.fill([i], x, y);
      const t = new ort.Tensor("float32", x, [1, 1, 28, 28]);
      const f = (await fs.run({ Input3: t })).Plus214_Output_0!.data as Float32Array;
      const q = (await qs.run({ Input3: t })).Plus214_Output_0!.data as Float32Array;
      if (argmax(f) === argmax(q)) agree++;
    }
    await fs.release();
    await qs.release();
    expect(agree).toBeGreaterThanOrEqual(98);
  });
});

describe("quantizeModel on mnist-8 without labels", () => {
  it("measures fidelity to float (top-1 agreement, SQNR and cosine per output) and stops at PTQ", async () => {
    const r = await quantizeModel({
      model: MNIST8,
      data: join(DATA, "mnist"),
      labels: "none",
      out: join(tmp, "unlabelled"),
      maxDrop: 2,
      ...small,
    });
    expect(r.metric.labelled).toBe(false);
    expect(r.reference).toBe(100); // the float model agrees with itself
    expect(r.stages.map((s) => s.stage)).toEqual(["reference", "ptq", "export"]);
    const outputs = (r.stages[1]!.details.metric as { outputs: Record<string, Record<string, number>> })
      .outputs;
    const logits = outputs.Plus214_Output_0!;
    expect(logits.top1Agreement).toBeGreaterThan(0.98);
    expect(logits.sqnrDb).toBeGreaterThan(20);
    expect(logits.cosine).toBeGreaterThan(0.99);
    expect(r.final).toBeCloseTo(100 * logits.top1Agreement!, 9);
  }, 300_000);
});
