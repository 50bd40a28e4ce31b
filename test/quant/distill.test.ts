import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, test } from "vitest";
import type { Dataset } from "../../src/data/dataset.js";
import { DataLoader } from "../../src/data/loader.js";
import { openNamedDataset } from "../../src/data/named.js";
import { exportCheckpoint } from "../../src/export/export.js";
import type { PlacementRow } from "../../src/export/source.js";
import { importModel, importOnnx } from "../../src/nn/import/index.js";
import type { NetModel } from "../../src/nn/model.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { DistillError, distill } from "../../src/quant/distill.js";
import { QatTraining } from "../../src/quant/qat-train.js";
import type { QConfig } from "../../src/quant/qconfig.js";
import { argmax } from "../../src/train/argmax.js";
import { EvalRunner } from "../../src/train/step.js";
import { DATA, MODELS } from "../helpers/paths.js";
import { randomF32 } from "../import/helpers.js";
import { synthDataset } from "./fixtures.js";

/** The same images with every label 0: whatever distillation learns, it cannot have learned from labels. */
function unlabelled(ds: Dataset, n: number): Dataset {
  return {
    ...ds,
    name: `${ds.name}-unlabelled`,
    length: n,
    stats: () => ds.stats(),
    fill: (idx, x, y, ctx) => {
      ds.fill(idx, x, y, ctx);
      y.fill(0n);
    },
  };
}

interface Outputs {
  logits: Float32Array;
  labels: BigInt64Array;
  classes: number;
}

async function outputs(net: NetModel, ds: Dataset, n: number): Promise<Outputs> {
  const ev = await EvalRunner.create(net, { threads: 1, optimization: "basic" });
  const loader = new DataLoader(ds, { batchSize: 500, shuffle: false });
  const logits: number[] = [];
  const labels: bigint[] = [];
  for await (const b of loader.epoch(0)) {
    const r = await ev.run({ dtype: "float32", dims: [b.size, ...ds.inputShape], data: b.x.slice() });
    logits.push(...(r.logits.data as Float32Array));
    labels.push(...b.y);
    if (labels.length >= n) break;
  }
  await ev.release();
  return { logits: Float32Array.from(logits), labels: BigInt64Array.from(labels), classes: 10 };
}

/** Top-1 agreement with the teacher, accuracy, and the mean KL(teacher ‖ student) of their softmax outputs. */
function compare(t: Outputs, s: Outputs): { agreement: number; accuracy: number; kl: number } {
  const n = t.labels.length;
  let agree = 0;
  let correct = 0;
  let kl = 0;
  const logSoftmax = (v: Float32Array, at: number) => {
    const row = Array.from(v.subarray(at, at + 10));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
    return row.map((x) => x - lse);
  };
  for (let i = 0; i < n; i++) {
    const a = argmax(s.logits, i * 10, 10);
    if (a === argmax(t.logits, i * 10, 10)) agree++;
    if (BigInt(a) === t.labels[i]) correct++;
    const [lt, ls] = [logSoftmax(t.logits, i * 10), logSoftmax(s.logits, i * 10)];
    kl += lt.reduce((acc, x, j) => acc + Math.exp(x) * (x - ls[j]!), 0);
  }
  return { agreement: agree / n, accuracy: correct / n, kl: kl / n };
}

describe("QAT by distillation", () => {
  test("mnist-8 at W4A8, no labels: closer to the float model than its calibrated start; exports, and plain ORT reproduces it", {
    timeout: 600_000,
  }, async () => {
    const { net } = importModel(join(MODELS, "mnist-8.onnx"));
    const train = unlabelled(await openNamedDataset("mnist", { split: "train", dataDir: DATA }), 2048);
    const test = await openNamedDataset("mnist", { split: "test", dataDir: DATA });
    const qat = await QatTraining.create(net, { preset: "w4a8" }, train, { threads: 1, seed: 1 });
    const teacher = await outputs(net, test, 2000);
    const start = compare(teacher, await outputs(qat.netAt(0), test, 2000));
    const d = await distill(net, train, { qat, steps: 300, lr: 1e-4, threads: 1, seed: 2 });
    const after = compare(teacher, await outputs(d.net, test, 2000));
    console.log(
      `mnist-8 W4A8 on 2000 test images: agreement ${(100 * start.agreement).toFixed(2)}% → ${(100 * after.agreement).toFixed(2)}%, accuracy ${(100 * start.accuracy).toFixed(2)}% → ${(100 * after.accuracy).toFixed(2)}%, KL(float ‖ int8) ${start.kl.toFixed(4)} → ${after.kl.toFixed(4)}; loss ${d.history[0]!.loss.toFixed(4)} → ${d.history.at(-1)!.loss.toFixed(4)}`,
    );
    expect(d.segments).toEqual([
      { name: "output", offset: 0, size: 10, kind: "softmax", classes: 10, temperature: 1 },
    ]);
    expect(after.kl).toBeLessThan(0.75 * start.kl);
    expect(after.agreement).toBeGreaterThanOrEqual(start.agreement);
    expect(d.history.at(-1)!.loss).toBeLessThan(d.history[0]!.loss);

    // the export path: QDQ from the QAT state, parity against the simulation, then plain onnxruntime-node
    const quant = d.checkpoint.meta.quant as { qconfig: QConfig; placement: PlacementRow[] };
    const ex = await exportCheckpoint(
      { file: "distilled", graph: d.checkpoint.graph, qconfig: quant.qconfig, placement: quant.placement },
      { data: test, limit: 500, threads: 1 },
    );
    expect(ex.parity.passed).toBe(true);
    const session = await ort.InferenceSession.create(ex.bytes);
    const loader = new DataLoader(test, { batchSize: 500, shuffle: false });
    const plain: number[] = [];
    for await (const b of loader.epoch(0)) {
      const r = await session.run({
        [session.inputNames[0]!]: new ort.Tensor("float32", b.x.slice(), [b.size, 1, 28, 28]),
      });
      plain.push(...(r[session.outputNames[0]!]!.data as Float32Array));
      if (plain.length >= 20000) break;
    }
    await session.release();
    const viaOrt = compare(teacher, { ...teacher, logits: Float32Array.from(plain) });
    expect(Math.abs(viaOrt.accuracy - after.accuracy)).toBeLessThanOrEqual(0.001);
    expect(Math.abs(viaOrt.agreement - after.agreement)).toBeLessThanOrEqual(0.001);
  });

  test("several outputs: regression segments weighed by 1 / the teacher's variance, labels need a softmax output", {
    timeout: 120_000,
  }, async () => {
    // an imported model with two outputs (scores [n, 2, 6, 6], boxes [n, 3, 6, 6]), trained through one flat output
    const g = new Graph();
    g.name = "two-heads";
    g.inputs.push({ name: "x", dtype: "float32", shape: ["n", 2, 6, 6] });
    const w = (name: string, dims: number[]) => g.constant(name, randomF32(dims, dims[0]!));
    const feat = g.op("Relu", [
      g.op("Conv", ["x", w("w1", [4, 2, 3, 3]), w("b1", [4])], { pads: [1, 1, 1, 1] }),
    ]);
    g.op("Conv", [feat, w("ws", [2, 4, 1, 1])], {}, { output: "scores" });
    g.op("Conv", [feat, w("wb", [3, 4, 1, 1])], {}, { output: "boxes" });
    g.outputs.push({ name: "scores", dtype: "float32" }, { name: "boxes", dtype: "float32" });
    const { net, report } = importOnnx(modelOf(g), { outputs: "all" });
    expect(report.outputs!.map((o) => [o.name, o.offset, o.size])).toEqual([
      ["scores", 0, 72],
      ["boxes", 72, 108],
    ]);
    const data = synthDataset([2, 6, 6], 256, 3);
    const history: number[] = [];
    const d = await distill(net, data, {
      settings: { preset: "w4a8", calibrationBatches: 2 },
      outputs: report.outputs!,
      kinds: { scores: "sigmoid" },
      steps: 60,
      lr: 1e-3,
      every: 20,
      threads: 1,
      onProgress: (p) => history.push(p.loss),
    });
    expect(d.segments.map((s) => [s.name, s.kind])).toEqual([
      ["scores", "sigmoid"],
      ["boxes", "regression"],
    ]);
    expect(d.segments[1]!.scale).toBeGreaterThan(0);
    expect(d.segments[1]!.scale).not.toBe(1);
    // the trained model keeps the file's outputs (a drop-in replacement)
    expect(d.net.eval.outputs.map((o) => o.name)).toEqual(["scores", "boxes"]);
    const quant = d.checkpoint.meta.quant as { qconfig: QConfig; placement: PlacementRow[] };
    const ex = await exportCheckpoint(
      { file: "two-heads", graph: d.checkpoint.graph, qconfig: quant.qconfig, placement: quant.placement },
      { data, limit: 64, threads: 1 },
    );
    expect(ex.parity.passed).toBe(true);
    expect(ex.model.graph.outputs.map((o) => o.name)).toEqual(["scores", "boxes"]);
    expect(history).toHaveLength(3);
    expect(history[2]!).toBeLessThan(history[0]!);
    await expect(
      distill(net, data, {
        settings: { preset: "w4a8", calibrationBatches: 1 },
        outputs: [{ name: "boxes", offset: 72, size: 108 }],
        labelWeight: 1,
        steps: 1,
        threads: 1,
      }),
    ).rejects.toThrow(/no output is a softmax/);
    await expect(distill(net, data, { steps: 0 })).rejects.toThrow(DistillError);
  });

  test("with labels: cross-entropy joins the KL term on a classifier's softmax output", {
    timeout: 60_000,
  }, async () => {
    const { NetBuilder } = await import("../../src/nn/builder.js");
    const b = new NetBuilder("mlp", [8], { seed: 2 });
    const net = b.build(
      b.linear(b.relu(b.linear(b.input, { name: "fc1", out: 16 })), { name: "fc2", out: 10 }),
    );
    const data = synthDataset([8], 128, 6);
    const base = {
      settings: { preset: "w4a8", calibrationBatches: 1 },
      steps: 20,
      every: 20,
      threads: 1,
      seed: 1,
    };
    const plain = await distill(net, data, base);
    const labelled = await distill(net, data, { ...base, labelWeight: 0.5 });
    // same batches, same start: the labelled loss adds 0.5 × cross-entropy (≈ 0.5 · ln 10 on random labels)
    expect(labelled.history[0]!.loss - plain.history[0]!.loss).toBeGreaterThan(0.5);
    expect(labelled.segments).toEqual(plain.segments);
  });
});
