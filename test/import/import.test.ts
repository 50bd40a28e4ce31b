import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { openNamedDataset } from "../../src/data/named.js";
import { ImportError, importModel, importOnnx } from "../../src/nn/import/index.js";
import { BatchNorm2d, Conv2d, Flatten, Linear, ReLU, sequential, stateDict } from "../../src/nn/index.js";
import { decodeModel, encodeModel, loadModel, modelOf } from "../../src/onnx/codec.js";
import { f32, i64, type Tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { evaluateModel } from "../../src/train/evaluate.js";
import { buildGradientGraph, buildTrainingStep, TrainingRunner } from "../../src/train/step.js";
import { DATA, MODELS } from "../helpers/paths.js";
import { handModel, maxAbsDiff, randomF32, runModel } from "./helpers.js";

const MNIST8 = join(MODELS, "mnist-8.onnx");

describe("mnist-8 (CNTK, opset 8, batch fixed at 1, raw 0–255 pixels)", () => {
  test("imports with a dynamic batch and reproduces the published 98.91% on the MNIST test set", async () => {
    const { net, report } = importModel(MNIST8);
    expect(report.opset).toEqual({ from: 8, to: 17 });
    expect(report.batch).toEqual({
      kind: "rewritten",
      fixed: 1,
      reshapes: [{ node: "Times212_reshape0", from: [1, 256], to: [-1, 256] }],
      constantPads: [],
    });
    expect(net.eval.inputs[0]!.shape).toEqual(["batch", 1, 28, 28]);
    expect(net.inputShape).toEqual([1, 28, 28]);
    expect(report.params.trainableCount).toBe(5994);
    expect(report.params.frozen).toEqual([]);
    expect(report.opsKeptInFloat).toEqual([]);
    expect(report.quantizedTensors).toEqual([]);
    expect(report.inputConvention).toBeNull();
    // CNTK's biases come as Adds after the layers: they become the layers' own biases, the MatMul a Gemm
    expect(report.biasFolds).toEqual([
      { add: "Plus30", layer: "Convolution28", op: "Conv", bias: "Parameter6" },
      { add: "Plus112", layer: "Convolution110", op: "Conv", bias: "Parameter88" },
      { add: "Plus214", layer: "Times212", op: "Gemm", bias: "Parameter194" },
    ]);
    expect(net.eval.nodes.filter((n) => n.opType === "Add")).toEqual([]);
    expect(net.eval.initializers.get("Parameter6")!.dims).toEqual([8]);

    const ds = await openNamedDataset("mnist", { split: "test", dataDir: DATA });
    const m = await evaluateModel(modelOf(net.eval), ds, { batchSize: 500 });
    expect(m.count).toBe(10000);
    // 9891 of 10,000 as published (a float rounding difference may move a sample or two)
    expect(Math.abs(m.accuracy - 0.9891)).toBeLessThanOrEqual(0.0002);
  });

  test("the rewritten graph computes, per sample of a batch, what the file computes at batch 1", async () => {
    const original = loadModel(MNIST8);
    const { net } = importModel(MNIST8);
    const x = randomF32([5, 1, 28, 28], 3, 255);
    const batched = (await runModel(modelOf(net.eval), { [net.input]: x })).data as Float32Array;
    for (let i = 0; i < 5; i++) {
      const one = f32([1, 1, 28, 28], (x.data as Float32Array).subarray(i * 784, (i + 1) * 784));
      const y = (await runModel(original, { Input3: one })).data as Float32Array;
      expect(maxAbsDiff(batched.subarray(i * 10, i * 10 + 10), y)).toBeLessThan(1e-3);
    }
  });

  test("an input convention is put in front: (x·scale − mean)/std", async () => {
    const plain = importModel(MNIST8).net;
    const scaled = importModel(MNIST8, { input: { scale: 1 / 255, mean: [0.5], std: [2 / 255] } });
    expect(scaled.report.inputConvention).toEqual({
      scale: 1 / 255,
      mean: [0.5],
      std: [2 / 255],
      layout: "nchw",
    });
    const x = randomF32([2, 1, 28, 28], 4, 255);
    const raw = x.data as Float32Array;
    // what the convention feeds the model: (x/255 − 0.5)/(2/255) = x/2 − 63.75
    const fed = f32(
      x.dims,
      raw.map((v) => v / 2 - 63.75),
    );
    const a = (await runModel(modelOf(scaled.net.eval), { [scaled.net.input]: x })).data as Float32Array;
    const b = (await runModel(modelOf(plain.eval), { [plain.input]: fed })).data as Float32Array;
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-3);
    expect(() => importModel(MNIST8, { input: { mean: [1, 2, 3] } })).toThrow(
      /3 values but input 'Input3' has 1 channels/,
    );
  });
});

describe("fixed batch that cannot be made dynamic is explained, naming the node", () => {
  test("a Reshape mixing the samples of the batch", () => {
    const model = handModel([2, 4], (g) =>
      g.op("Reshape", ["x", g.constant("s", i64([2], [1, 8]))], {}, { name: "mix" }),
    );
    expect(() => importOnnx(model)).toThrow(ImportError);
    expect(() =>
      importOnnx(
        handModel([2, 4], (g) =>
          g.op("Reshape", ["x", g.constant("s", i64([2], [1, 8]))], {}, { name: "mix" }),
        ),
      ),
    ).toThrow(/node 'mix' \(Reshape\).*batch is fixed at 2.*mixing samples/);
  });
  test("a constant holding one row per sample", () => {
    const build = () =>
      handModel([3, 4], (g) => {
        const h = g.op("MatMul", ["x", g.constant("w", randomF32([4, 5], 1))], {}, { name: "fc" });
        return g.op("Add", [h, g.constant("per_sample", randomF32([3, 5], 2))], {}, { name: "add_rows" });
      });
    expect(() => importOnnx(build())).toThrow(/node 'add_rows' \(Add\).*has 3 rows along the batch axis/);
  });
});

describe("parameters: trainable, frozen, behind ops without a gradient rule", () => {
  test("float tensors in non-weight slots and scalar constants are frozen; integer shapes are not parameters", () => {
    const model = handModel(["n", 2, 4, 4], (g) => {
      const c = g.op(
        "Conv",
        ["x", g.constant("conv.w", randomF32([3, 2, 3, 3], 1)), g.constant("conv.b", randomF32([3], 2))],
        { pads: [1, 1, 1, 1] },
      );
      const k = g.op("Mul", [c, g.constant("half", f32([], [0.5]))]);
      const r = g.op("Clip", [k, g.constant("lo", f32([], [0])), g.constant("hi", f32([], [6]))]);
      const up = g.op("Resize", [r, "", g.constant("scales", f32([4], [1, 1, 2, 2]))], { mode: "nearest" });
      const flat = g.op("Reshape", [up, g.constant("shape", i64([2], [0, -1]))]);
      return g.op(
        "Gemm",
        [flat, g.constant("fc.w", randomF32([5, 192], 3)), g.constant("fc.b", randomF32([5], 4))],
        { transB: 1 },
      );
    });
    const { net, report } = importOnnx(model);
    expect(net.params.sort()).toEqual(["conv.b", "conv.w", "fc.b", "fc.w"]);
    const frozen = Object.fromEntries(report.params.frozen.map((f) => [f.name, f.reason]));
    expect(Object.keys(frozen).sort()).toEqual(["half", "hi", "lo", "scales"]);
    expect(frozen.half).toMatch(/scalar constant of Mul/);
    expect(frozen.scales).toMatch(/Resize .* slot that is not a weight/);
    expect(report.batch).toEqual({ kind: "dynamic", dim: "n" });
  });

  test("weights behind a node without a gradient rule are frozen and named; the others train", async () => {
    const model = handModel(["n", 4], (g) => {
      const h = g.op("MatMul", ["x", g.constant("w1", randomF32([4, 6], 1))], {}, { name: "fc1" });
      const e = g.op("Erf", [h], {}, { name: "erf" });
      return g.op("MatMul", [e, g.constant("w2", randomF32([6, 3], 2))], {}, { name: "fc2" });
    });
    const { net, report } = importOnnx(model);
    expect(net.params).toEqual(["w2"]);
    expect(report.params.frozen).toEqual([
      {
        name: "w1",
        dims: [4, 6],
        numel: 24,
        reason: "behind Erf 'erf', which qat has no gradient rule for (kept in float, frozen)",
      },
    ]);
    expect(report.opsKeptInFloat).toEqual([{ opType: "Erf", nodes: ["erf"], blocking: true }]);
    // the training step builds and runs: Erf stays in the forward pass, no gradient goes through it
    const runner = await TrainingRunner.create(buildTrainingStep(net, { optimizer: { kind: "sgd" } }), {
      threads: 1,
    });
    const x = randomF32([8, 4], 5);
    const y = i64([8], [0, 1, 2, 0, 1, 2, 0, 1]);
    const first = await runner.run(x, y, 0.5);
    let last = first;
    for (let i = 0; i < 10; i++) last = await runner.run(x, y, 0.5);
    expect(last.loss).toBeLessThan(first.loss);
    expect(
      maxAbsDiff(
        runner.values("param").get("w2")!.data as Float32Array,
        net.train.initializers.get("w2")!.data as Float32Array,
      ),
    ).toBeGreaterThan(0);
    await runner.release();
  });

  test("the import fails, naming the op, when every weight sits behind a node without a rule", () => {
    const model = handModel(["n", 4], (g) => {
      const h = g.op(
        "Gemm",
        ["x", g.constant("w", randomF32([4, 3], 1)), g.constant("b", randomF32([3], 2))],
        {},
        { name: "fc" },
      );
      return g.op("Erf", [h], {}, { name: "squash" });
    });
    expect(() => importOnnx(model)).toThrow(
      /node 'squash' \(Erf\).*no weight can be trained: every weight sits behind Erf 'squash'/,
    );
  });
});

describe("BatchNormalization of an imported model trains like a zoo model's", () => {
  test("a zoo-built net exported in inference form and imported gives the same loss, gradients and BN updates", async () => {
    const zoo = sequential(
      "bn-net",
      [2, 6, 6],
      [Conv2d(4, 3, { padding: 1 }), BatchNorm2d(), ReLU(), Flatten(), Linear(5)],
      { seed: 3 },
    );
    // trained-looking running statistics, as a file would hold
    zoo.train.initializers.set("1.running_mean", randomF32([4], 7, 0.5));
    zoo.train.initializers.set("1.running_var", f32([4], [0.5, 1, 1.5, 2]));
    for (const k of ["1.running_mean", "1.running_var"])
      zoo.eval.initializers.set(k, zoo.train.initializers.get(k)!);
    const file = decodeModel(encodeModel(modelOf(zoo.eval)));
    const { net, report } = importOnnx(file);
    expect(
      report.batchNorm.map((b) => [b.momentum, b.runningMean, b.runningVar, b.numBatchesTracked]),
    ).toEqual([[0.1, "1.running_mean", "1.running_var", "1.num_batches_tracked"]]);
    expect(net.params).toEqual(zoo.params);
    expect(net.buffers).toEqual(zoo.buffers);

    const x = randomF32([6, 2, 6, 6], 11, 2);
    const labels = i64([6], [0, 1, 2, 3, 4, 0]);
    const grads = async (m: typeof zoo) => {
      const gg = buildGradientGraph(m);
      const s = await openSession(gg.model, { threads: 1 });
      const feeds: Record<string, Tensor> = { [m.input]: x, labels };
      for (const [k, t] of stateDict(m)) feeds[k] = t;
      const out = await run(s, feeds);
      await s.release();
      return { loss: (out[gg.loss]!.data as Float32Array)[0]!, out, gg };
    };
    const a = await grads(zoo);
    const b = await grads(net);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-6);
    for (const p of zoo.params) {
      const d = maxAbsDiff(
        a.out[a.gg.grads.get(p)!]!.data as Float32Array,
        b.out[b.gg.grads.get(p)!]!.data as Float32Array,
      );
      expect(d, p).toBeLessThan(1e-6);
    }
    for (const buf of ["1.running_mean", "1.running_var"]) {
      const d = maxAbsDiff(
        a.out[zoo.updates.get(buf)!]!.data as Float32Array,
        b.out[net.updates.get(buf)!]!.data as Float32Array,
      );
      expect(d, buf).toBeLessThan(1e-6);
    }
    // the update moved the statistics (momentum 0.1 towards the batch's)
    expect(
      maxAbsDiff(b.out[net.updates.get("1.running_var")!]!.data as Float32Array, [0.5, 1, 1.5, 2]),
    ).toBeGreaterThan(1e-3);
  });
});

describe("float16 weights and a Softmax output (squeezenet1.0-fp16, onnx-caffe2, opset 7)", () => {
  test("weights widened, batch made dynamic, output flattened, training reads the logits before the Softmax", () => {
    const { net, report } = importModel(join(MODELS, "squeezenet1.0-fp16.onnx"));
    expect(report.input.dtype).toBe("float16");
    expect(net.eval.inputs[0]!.dtype).toBe("float32");
    expect(report.widened.tensors).toBe(52);
    expect(report.output).toEqual({ name: "softmaxout_1", classes: 1000 });
    expect(net.eval.outputs[0]!.shape).toEqual(["batch", 1000]);
    expect(report.softmaxTail).not.toBeNull();
    expect(net.train.nodes.some((n) => n.opType === "Softmax")).toBe(false);
    expect(net.eval.nodes.some((n) => n.opType === "Softmax")).toBe(true);
    expect(report.dropout).toHaveLength(1);
    expect(report.params.trainableCount).toBe(1235496);
    expect(report.params.frozen.map((f) => f.reason)).toEqual([expect.stringMatching(/not a weight/)]);
  });
});
