import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { type ImportResult, importModel } from "../../src/nn/import/index.js";
import { stateDict } from "../../src/nn/model.js";
import { loadModel, modelOf } from "../../src/onnx/codec.js";
import type { Model } from "../../src/onnx/ir.js";
import { f32, type Tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { buildGradientGraph, buildTrainingStep, TrainingRunner } from "../../src/train/step.js";
import { MODELS } from "../helpers/paths.js";
import { maxAbsDiff, randomF32 } from "./helpers.js";

// MediaPipe BlazeFace via tf2onnx: NHWC input [1,128,128,3] in [-1,1], batch fixed at 1, channels padded by
// Concat with a ConstantOfShape of zeros, four raw outputs (scores and regressors of 512 + 384 anchors)
const FILE = join(MODELS, "blazeface-front-128.onnx");
const SAMPLE = 128 * 128 * 3;

async function runAll(model: Model, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const s = await openSession(model, { threads: 2 });
  try {
    return await run(s, feeds);
  } finally {
    await s.release();
  }
}

describe("blazeface-front-128 (tf2onnx, NHWC, fixed batch, channel-padding Concat)", () => {
  let original: Model;
  let imported: ImportResult;
  beforeAll(() => {
    original = loadModel(FILE);
    imported = importModel(FILE, { outputs: "all" });
  });

  test("imports as a drop-in model: same input and output names, NHWC layout, shapes with a dynamic batch", () => {
    const { net, report } = imported;
    expect(report.batch.kind).toBe("rewritten");
    if (report.batch.kind !== "rewritten") return;
    // the eleven TFLite channel pads became Pads of zeros on the channel axis (NCHW inside, after the Transpose)
    expect(report.batch.constantPads).toHaveLength(11);
    expect(report.batch.constantPads.every((p) => p.axis === 1 && p.value === 0)).toBe(true);
    expect(net.eval.nodes.filter((n) => n.opType === "Concat")).toEqual([]);
    expect(net.eval.nodes.filter((n) => n.opType === "ConstantOfShape")).toEqual([]);
    expect(report.input).toMatchObject({ name: "input:0", sampleShape: [128, 128, 3], layout: "nhwc" });
    expect(net.eval.inputs.filter((v) => !net.eval.initializers.has(v.name))).toEqual([
      { name: "input:0", dtype: "float32", shape: ["batch", 128, 128, 3] },
    ]);
    const fileOutputs = original.graph.outputs.map((o) => ({
      name: o.name,
      shape: ["batch", ...o.shape!.slice(1)],
    }));
    expect(net.eval.outputs.map((o) => ({ name: o.name, shape: o.shape }))).toEqual(fileOutputs);
    expect(report.outputs?.map((o) => [o.name, o.offset, o.size])).toEqual([
      ["Identity:0", 0, 512],
      ["Identity_1:0", 512, 384],
      ["Identity_2:0", 896, 8192],
      ["Identity_3:0", 9088, 6144],
    ]);
    expect(report.output.classes).toBe(15232);
    // with every output trained, every weight of the file is trainable; nothing is frozen
    expect(report.params.trainableCount).toBe(100412);
    expect(report.params.frozen).toEqual([]);
  });

  test("batch 1 matches the file in ORT; each sample of a batch of 4 matches its batch-1 outputs", async () => {
    const { net } = imported;
    const x4 = randomF32([4, 128, 128, 3], 21);
    const raw = x4.data as Float32Array;
    const four = await runAll(modelOf(net.eval), { "input:0": x4 });
    let fileDelta = 0;
    let batchDelta = 0;
    for (let i = 0; i < 4; i++) {
      const x1 = f32([1, 128, 128, 3], raw.slice(i * SAMPLE, (i + 1) * SAMPLE));
      const ref = await runAll(original, { "input:0": x1 });
      const one = await runAll(modelOf(net.eval), { "input:0": x1 });
      for (const o of original.graph.outputs) {
        const a = one[o.name]!.data as Float32Array;
        fileDelta = Math.max(fileDelta, maxAbsDiff(a, ref[o.name]!.data as Float32Array));
        const per = a.length;
        batchDelta = Math.max(
          batchDelta,
          maxAbsDiff((four[o.name]!.data as Float32Array).subarray(i * per, (i + 1) * per), a),
        );
        expect(four[o.name]!.dims).toEqual([4, ...o.shape!.slice(1)]);
      }
    }
    console.log(
      `blazeface: max |Δ| imported vs file (batch 1) ${fileDelta}, batch 4 vs batch 1 ${batchDelta}`,
    );
    expect(fileDelta).toBeLessThanOrEqual(1e-5);
    expect(batchDelta).toBeLessThanOrEqual(1e-5);
  }, 30_000);

  test("the input convention acts on the last axis of an NHWC input: (x·scale − mean[c]) / std[c]", async () => {
    const mean = [0.2, 0.4, 0.6];
    const std = [0.5, 1, 2];
    const scaled = importModel(FILE, { outputs: "all", input: { scale: 1 / 255, mean, std } });
    expect(scaled.report.inputConvention).toEqual({ scale: 1 / 255, mean, std, layout: "nhwc" });
    expect(scaled.net.eval.inputs[0]).toEqual(imported.net.eval.inputs[0]);
    const x = randomF32([2, 128, 128, 3], 23, 255).data as Float32Array;
    const pixels = f32([2, 128, 128, 3], x.map(Math.abs));
    // what the model should be fed: channel c = index % 3 (channels last)
    const fed = f32(
      pixels.dims,
      (pixels.data as Float32Array).map((v, i) => (v / 255 - mean[i % 3]!) / std[i % 3]!),
    );
    const a = await runAll(modelOf(scaled.net.eval), { "input:0": pixels });
    const b = await runAll(modelOf(imported.net.eval), { "input:0": fed });
    for (const o of original.graph.outputs)
      expect(
        maxAbsDiff(a[o.name]!.data as Float32Array, b[o.name]!.data as Float32Array),
        o.name,
      ).toBeLessThan(1e-3);
    expect(() => importModel(FILE, { outputs: "all", input: { mean: [0.5, 0.5] } })).toThrow(
      /2 values but input 'input:0' has 3 channels \(NHWC\)/,
    );
    // told NCHW, the channel axis is the first sample dim (128 long): the three means no longer fit
    expect(() => importModel(FILE, { outputs: "all", input: { mean, layout: "nchw" } })).toThrow(
      /3 values but input 'input:0' has 128 channels \(NCHW\)/,
    );
  }, 30_000);

  test("trains at batch 4: the gradient matches finite differences, and SGD on MSE to self-targets lowers the loss", async () => {
    const { net } = imported;
    const x = randomF32([4, 128, 128, 3], 22);
    // targets: the flat outputs of the untouched model, moved by 0.1 so the loss starts at 0.01
    const out = await runAll(modelOf(net.eval), { "input:0": x });
    const flat = new Float32Array(4 * 15232);
    for (const part of imported.report.outputs!) {
      const d = out[part.name]!.data as Float32Array;
      for (let i = 0; i < 4; i++)
        for (let k = 0; k < part.size; k++) flat[i * 15232 + part.offset + k] = d[i * part.size + k]! + 0.1;
    }
    const target = f32([4, 15232], flat);

    // the gradient through the Pads (and everything else) against central differences along the gradient
    const gg = buildGradientGraph(net, { loss: { kind: "mse" } });
    const s = await openSession(gg.model, { threads: 2 });
    const feeds: Record<string, Tensor> = { [net.input]: x, labels: target };
    for (const [k, t] of stateDict(net)) feeds[k] = t;
    const loss = async (f: Record<string, Tensor>) => ((await run(s, f))[gg.loss]!.data as Float32Array)[0]!;
    const grads = await run(s, feeds);
    // the first Conv: its gradient passes back through all eleven Pads
    const p = net.params.find((k) => k.includes("functional_1/conv2d/Conv2D"))!;
    const g = grads[gg.grads.get(p)!]!.data as Float32Array;
    const norm2 = g.reduce((a, v) => a + v * v, 0);
    const eps = 1e-3 / Math.sqrt(norm2);
    const w = feeds[p]!.data as Float32Array;
    const moved = (sign: number) =>
      f32(
        feeds[p]!.dims,
        w.map((v, i) => v + sign * eps * g[i]!),
      );
    const fd =
      ((await loss({ ...feeds, [p]: moved(1) })) - (await loss({ ...feeds, [p]: moved(-1) }))) / (2 * eps);
    await s.release();
    console.log(
      `blazeface: d loss along the gradient of '${p}': finite differences ${fd}, analytic ${norm2}`,
    );
    expect(Math.abs(fd - norm2) / norm2).toBeLessThan(0.05);

    const step = buildTrainingStep(net, { loss: { kind: "mse" }, optimizer: { kind: "sgd" } });
    const runner = await TrainingRunner.create(step, { threads: 2 });
    try {
      const losses: number[] = [];
      // the raw regressors are in pixels, so the loss is steep: a small rate keeps plain SGD stable
      for (let i = 0; i < 3; i++) losses.push((await runner.run(x, target, 1e-6)).loss);
      console.log(
        `blazeface: MSE over 3 SGD steps at batch 4: ${losses.map((l) => l.toFixed(6)).join(", ")}`,
      );
      expect(losses[0]!).toBeCloseTo(0.01, 5);
      expect(losses.every(Number.isFinite)).toBe(true);
      expect(losses[1]!).toBeLessThan(losses[0]!);
      expect(losses[2]!).toBeLessThan(losses[0]!);
    } finally {
      await runner.release();
    }
  }, 30_000);
});
