import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import type { NetModel } from "../../src/nn/model.js";
import { prependNormalization } from "../../src/nn/normalize.js";
import { zooModel } from "../../src/nn/zoo.js";
import type { Tensor } from "../../src/onnx/tensor.js";
import { calibrate } from "../../src/quant/calibrate.js";
import { lowerFakeQuant } from "../../src/quant/fake-quant.js";
import { placeQuant } from "../../src/quant/placement.js";
import { applyQuant } from "../../src/quant/prepare.js";
import { preset } from "../../src/quant/qconfig.js";
import { openSession } from "../../src/runtime/session.js";
import { buildGradientGraph, buildTrainingStep, EvalRunner, TrainingRunner } from "../../src/train/step.js";
import { batchOf, synthDataset } from "./fixtures.js";

const opts = { threads: 1, optimization: "basic" as const };

/** BN running statistics as float training leaves them: 30 steps at lr 0 (momentum 0.1: 4 % of the start left). */
async function settleStatistics(net: NetModel): Promise<void> {
  const r = await TrainingRunner.create(buildTrainingStep(net, { optimizer: { kind: "sgd" } }), opts);
  for (let i = 0; i < 30; i++) await r.run(batchOf(net.inputShape, 8, 100 + (i % 4)), labels(8), 0);
  for (const [k, t] of r.values("buffer")) {
    net.train.initializers.set(k, t);
    if (net.eval.initializers.has(k)) net.eval.initializers.set(k, t);
  }
  await r.release();
}

const labels = (n: number): Tensor => ({
  dtype: "int64",
  dims: [n],
  data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 10)),
});

async function prepared(model: string, presetName: string, frozen: boolean) {
  const net = zooModel(model, { seed: 2 });
  prependNormalization(net, [127], [70]);
  await settleStatistics(net);
  const placement = placeQuant(net, preset(presetName));
  const qp = await calibrate(net, placement, synthDataset(net.inputShape, 64, 100), {
    batches: 2,
    batchSize: 32,
  });
  return { net, placement, q: applyQuant(net, placement, qp, { bnFrozen: frozen }) };
}

/** Logits of the (training-mode) train graph of a model for a batch. */
async function trainLogits(net: NetModel, x: Tensor): Promise<Float32Array> {
  const { model } = buildGradientGraph(net);
  lowerFakeQuant(model.graph);
  model.graph.outputs.push({ name: net.output, dtype: "float32" });
  const s = await openSession(model, opts);
  const feeds: Record<string, ort.Tensor> = {
    [net.input]: new ort.Tensor("float32", x.data as Float32Array, x.dims),
  };
  feeds.labels = new ort.Tensor("int64", new BigInt64Array(x.dims[0]!), [x.dims[0]!]);
  for (const k of [...net.params, ...net.buffers]) {
    const t = net.train.initializers.get(k)!;
    feeds[k] = new ort.Tensor(t.dtype as "float32", t.data as Float32Array, t.dims);
  }
  const out = await s.run(feeds, [net.output]);
  await s.release();
  return out[net.output]!.data as Float32Array;
}

describe("fake-quantized models", () => {
  it("resnet8: no BatchNormalization in the eval graph; frozen-statistics training forward equals the eval graph bit for bit", async () => {
    const { q } = await prepared("resnet8", "ort-cpu", true);
    expect(q.eval.nodes.filter((n) => n.opType === "BatchNormalization")).toEqual([]);
    expect(q.eval.nodes.filter((n) => n.opType === "QuantizeLinear").length).toBeGreaterThan(10);
    const x = batchOf(q.inputShape, 6, 9);
    const ev = await EvalRunner.create(q, opts);
    const a = (await ev.run(x)).logits.data as Float32Array;
    await ev.release();
    const b = await trainLogits(q, x);
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it("resnet8 with batch statistics: the QAT train forward is the float train forward up to quantization noise", async () => {
    const { net, q } = await prepared("resnet8", "ort-cpu", false);
    const x = batchOf(q.inputShape, 16, 4);
    const f = await trainLogits(net, x);
    const g = await trainLogits(q, x);
    let num = 0;
    let den = 0;
    for (let i = 0; i < f.length; i++) {
      num += (f[i]! - g[i]!) ** 2;
      den += f[i]! ** 2;
    }
    // 8-bit noise: a few percent of the signal; a wrong fold (e.g. a missing 1/f) is off by 100 %
    expect(Math.sqrt(num / den)).toBeLessThan(0.05);
    expect(Math.sqrt(num / den)).toBeGreaterThan(0);
  });

  it("one QAT step moves the weights, the learned scales and the BN statistics", async () => {
    const { q, placement } = await prepared("resnet8", "w4a8", false);
    const step = buildTrainingStep(q, { optimizer: { kind: "sgd", momentum: 0.9 } });
    lowerFakeQuant(step.model.graph);
    expect(step.model.graph.nodes.some((n) => n.domain === "ai.qat")).toBe(false);
    const r = await TrainingRunner.create(step, opts);
    const before = new Map(
      [...r.values()]
        .filter(([, t]) => t.dtype === "float32")
        .map(([k, t]) => [k, Float32Array.from(t.data as Float32Array)]),
    );
    const x = batchOf(q.inputShape, 8, 3);
    const res = await r.run(x, labels(8), 0.01);
    expect(Number.isFinite(res.loss)).toBe(true);
    const after = r.values();
    const moved = (k: string) =>
      !Float32Array.from(after.get(k)!.data as Float32Array).every((v, i) => v === before.get(k)![i]);
    expect(moved("layer1.0.conv1.weight")).toBe(true);
    expect(moved(placement.weights[0]!.scale)).toBe(true);
    expect(moved(placement.activations[1]!.scale)).toBe(true);
    expect(moved("bn1.running_mean")).toBe(true);
    await r.release();
  });

  it("observer phase: scales are buffers re-estimated in the graph (moving-average min-max, weights' per-channel max)", async () => {
    const net = zooModel("mnist-cnn", { seed: 2 });
    prependNormalization(net, [127], [70]);
    const placement = placeQuant(net, preset("ort-cpu"));
    const qp = await calibrate(net, placement, synthDataset(net.inputShape, 64, 100), {
      batches: 2,
      batchSize: 32,
    });
    const q = applyQuant(net, placement, qp, { observing: true });
    const step = buildTrainingStep(q, { optimizer: { kind: "sgd", momentum: 0.9 } });
    lowerFakeQuant(step.model.graph);
    const kinds = new Map(step.carried.map((c) => [c.name, c.kind]));
    expect(kinds.get("conv1.weight.scale")).toBe("buffer");
    expect(kinds.get("Relu_out0.scale")).toBe("buffer");
    expect(kinds.get("Relu_out0.observer_max")).toBe("buffer");
    const r = await TrainingRunner.create(step, opts);
    const w0 = Float32Array.from(r.values().get("conv1.weight")!.data as Float32Array);
    const max0 = (r.values().get("Relu_out0.observer_max")!.data as Float32Array)[0]!;
    await r.run(batchOf(q.inputShape, 8, 3), labels(8), 0.01);
    const v = r.values();
    // weights: max |w| / 127 per output channel of the weight the step read
    const ws = v.get("conv1.weight.scale")!.data as Float32Array;
    for (let c = 0; c < 8; c++) {
      const amax = Math.max(...Array.from(w0.subarray(c * 9, c * 9 + 9), Math.abs));
      expect(ws[c]).toBeCloseTo(amax / 127, 7);
    }
    // activations: the observer moved 1 % of the way to the batch's max, and the scale follows min/max
    const max1 = (v.get("Relu_out0.observer_max")!.data as Float32Array)[0]!;
    const min1 = (v.get("Relu_out0.observer_min")!.data as Float32Array)[0]!;
    expect(max1).not.toBe(max0);
    const s1 = (v.get("Relu_out0.scale")!.data as Float32Array)[0]!;
    expect(s1).toBeCloseTo((Math.max(max1, 0) - Math.min(min1, 0)) / 255, 7);
    await r.release();
  });
});
