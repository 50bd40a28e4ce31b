import { describe, expect, it } from "vitest";
import { ArrayDataset } from "../../src/data/dataset.js";
import { loadStateDict, type NetModel } from "../../src/nn/model.js";
import {
  BatchNorm2d,
  Conv2d,
  Flatten,
  GlobalAvgPool,
  Linear,
  ReLU,
  ReLU6,
  sequential,
} from "../../src/nn/sequential.js";
import { zooModel } from "../../src/nn/zoo.js";
import { modelOf } from "../../src/onnx/codec.js";
import { cloneGraph } from "../../src/onnx/ir.js";
import { type Tensor, tensor, toFloat32 } from "../../src/onnx/tensor.js";
import { absMax, calibrate, channelRanges } from "../../src/quant/calibrate.js";
import { clePairInputs, equalizeCrossLayer } from "../../src/quant/cle.js";
import { fakeQuantize } from "../../src/quant/fake-quant.js";
import { placeQuant } from "../../src/quant/placement.js";
import { applyQuant } from "../../src/quant/prepare.js";
import { qconfigFrom } from "../../src/quant/qconfig.js";
import { openSession, run } from "../../src/runtime/session.js";
import { seeded } from "../helpers/random.js";

/** Conv 3→8 + ReLU → depthwise 3×3 (+ BN) → pointwise 8→16 + ReLU → GAP → Linear: a MobileNet-like block. */
function dwNet(bn: boolean): NetModel {
  return sequential(
    "dw-net",
    [3, 12, 12],
    [
      Conv2d(8, 3, { padding: 1 }),
      ReLU(),
      Conv2d(8, 3, { padding: 1, groups: 8, bias: !bn }),
      ...(bn ? [BatchNorm2d()] : []),
      Conv2d(16, 1),
      ReLU(),
      GlobalAvgPool(),
      Flatten(),
      Linear(10),
    ],
    { seed: 3 },
  );
}

const r = seeded(5);
const rand = (n: number, lo: number, hi: number) =>
  Float32Array.from({ length: n }, () => lo + (hi - lo) * r());

async function outputs(net: NetModel, x: Tensor): Promise<Float32Array> {
  const s = await openSession(modelOf(net.eval), { optimization: "disabled" });
  try {
    return toFloat32((await run(s, { [net.input]: x }))[net.output]!);
  } finally {
    await s.release();
  }
}

/** The same model with every Conv/Gemm weight quantized per tensor to int8 (symmetric min-max). */
function perTensorInt8(net: NetModel): NetModel {
  const q: NetModel = { ...net, train: cloneGraph(net.train), eval: cloneGraph(net.eval) };
  const state = new Map<string, Tensor>();
  for (const n of net.eval.nodes) {
    if (n.opType !== "Conv" && n.opType !== "Gemm") continue;
    const t = net.eval.initializers.get(n.inputs[1]!)!;
    const w = toFloat32(t);
    const s = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127;
    state.set(n.inputs[1]!, tensor("float32", [...t.dims], fakeQuantize(w, t.dims, [s], [0], -128, 127)));
  }
  loadStateDict(q, state);
  return q;
}

const mse = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0) / a.length;

describe("cross-layer equalization", () => {
  it("keeps the float function of a depthwise-separable model (with and without BN)", async () => {
    for (const bn of [false, true]) {
      const net = dwNet(bn);
      if (bn) {
        loadStateDict(net, {
          "3.weight": tensor("float32", [8], rand(8, 0.3, 3)),
          "3.bias": tensor("float32", [8], rand(8, -1, 1)),
          "3.running_mean": tensor("float32", [8], rand(8, -0.5, 0.5)),
          "3.running_var": tensor("float32", [8], rand(8, 0.05, 4)),
        });
      }
      const x = tensor("float32", [4, 3, 12, 12], rand(4 * 3 * 144, -1, 1));
      const before = await outputs(net, x);
      const res = equalizeCrossLayer(net);
      const names = res.pairs.map((p) => `${p.first}->${p.second}`);
      expect(names).toEqual(["0->2", bn ? "2->4" : "2->3"]);
      expect(res.pairs.map((p) => p.between)).toEqual([["Relu"], []]);
      const after = await outputs(res.model, x);
      for (let i = 0; i < before.length; i++) expect(Math.abs(after[i]! - before[i]!)).toBeLessThan(1e-5);
      // the rescale did something: at convergence each channel has the same range in both layers of a pair
      for (const p of res.pairs) {
        expect(p.imbalanceBefore).toBeGreaterThan(0.1);
        expect(p.imbalanceAfter).toBeLessThan(1e-3);
      }
      // the input model is untouched
      expect(await outputs(net, x)).toEqual(before);
    }
  });

  it("lowers the per-tensor int8 weight quantization error of a model with unbalanced channel ranges", async () => {
    const net = dwNet(false);
    // unbalance: channel i of layer 0 times k_i, input channel i of the depthwise layer divided by k_i (exact
    // through the ReLU for k_i > 0), k from 1/20 to 20
    const k = Float32Array.from({ length: 8 }, (_, i) => 20 ** ((i - 3.5) / 3.5));
    const w0 = toFloat32(net.eval.initializers.get("0.weight")!).slice();
    const b0 = toFloat32(net.eval.initializers.get("0.bias")!).slice();
    const w2 = toFloat32(net.eval.initializers.get("2.weight")!).slice();
    for (let i = 0; i < 8; i++) {
      for (let j = 0; j < 27; j++) w0[i * 27 + j]! *= k[i]!;
      b0[i]! *= k[i]!;
      for (let j = 0; j < 9; j++) w2[i * 9 + j]! /= k[i]!;
    }
    loadStateDict(net, {
      "0.weight": tensor("float32", [8, 3, 3, 3], w0),
      "0.bias": tensor("float32", [8], b0),
      "2.weight": tensor("float32", [8, 1, 3, 3], w2),
    });
    const x = tensor("float32", [16, 3, 12, 12], rand(16 * 3 * 144, -1, 1));
    const ref = await outputs(net, x);
    const errBefore = mse(await outputs(perTensorInt8(net), x), ref);
    const res = equalizeCrossLayer(net);
    const refAfter = await outputs(res.model, x);
    const errAfter = mse(await outputs(perTensorInt8(res.model), x), refAfter);
    console.log(
      `per-tensor int8 weights, output MSE: before CLE ${errBefore.toExponential(3)}, after ${errAfter.toExponential(3)}`,
    );
    expect(errAfter).toBeLessThan(errBefore / 10);
    expect(res.iterations).toBeGreaterThan(1);
  });

  it("data-aware: evens the observed activation ranges between depthwise and pointwise, lowering the int8 error", async () => {
    const net = dwNet(false);
    // depthwise channel 0 given a large bias: its output spans far more than the other channels' while its weights
    // do not (BlazeFace's last depthwise output has a channel in [−322, 0] where the median channel spans 6), so the
    // weight ranges CLE evens without data do not show the imbalance of the per-tensor activation between the layers
    const b2 = toFloat32(net.eval.initializers.get("2.bias")!).slice();
    b2[0] = -60;
    loadStateDict(net, { "2.bias": tensor("float32", [8], b2) });
    const n = 64;
    const data = new ArrayDataset({
      name: "uniform",
      inputShape: [3, 12, 12],
      numClasses: 0,
      data: rand(n * 3 * 144, -1, 1),
      labels: new Int32Array(n),
    });
    const inputs = clePairInputs(net);
    const dwOut = net.eval.nodes.find((x) => x.inputs[1] === "2.weight")!.outputs[0]!;
    expect(inputs).toContain(dwOut);
    const rangesOf = async (m: NetModel) =>
      new Map(
        [...(await channelRanges(m, inputs, data, { batches: 1, batchSize: n }))].map(([v, r]) => [
          v,
          absMax(r),
        ]),
      );
    const spread = (a: Float32Array) => Math.max(...a) / Math.min(...a);
    const before = await rangesOf(net);
    const res = equalizeCrossLayer(net, { inputMax: before });
    const x = tensor("float32", [n, 3, 12, 12], (data.data as Float32Array).slice());
    const ref = await outputs(net, x);
    const out = await outputs(res.model, x);
    for (let i = 0; i < ref.length; i++)
      expect(Math.abs(out[i]! - ref[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(ref[i]!)));
    const after = await rangesOf(res.model);
    expect(spread(before.get(dwOut)!)).toBeGreaterThan(20);
    expect(spread(after.get(dwOut)!)).toBeLessThan(spread(before.get(dwOut)!) / 4);
    // int8 (ort-cpu: per-channel weights, per-tensor activations): the output error against each model's own float
    const int8Error = async (m: NetModel) => {
      const placement = placeQuant(m, qconfigFrom("ort-cpu"));
      const qp = await calibrate(m, placement, data, { batches: 1, batchSize: n, observer: "minmax" });
      return mse(await outputs(applyQuant(m, placement, qp), x), ref);
    };
    const errs = {
      none: await int8Error(net),
      weights: await int8Error(equalizeCrossLayer(net).model),
      data: await int8Error(res.model),
    };
    console.log(
      `int8 output MSE: no CLE ${errs.none.toExponential(3)}, weight-range CLE ${errs.weights.toExponential(3)}, data-aware CLE ${errs.data.toExponential(3)}`,
    );
    expect(errs.data).toBeLessThan(errs.none / 2);
    // the weight-range CLE cannot see the biased channel; the data-aware one trades it against the pointwise weights
    expect(errs.data).toBeLessThan(errs.weights);
  });

  it("leaves ReLU6 pairs alone without data and equalizes them within observed ranges with it", () => {
    const net = sequential("r6", [3, 8, 8], [Conv2d(4, 3), ReLU6(), Conv2d(4, 1)], { seed: 2 });
    const plain = equalizeCrossLayer(net);
    expect(plain.pairs).toEqual([]);
    expect(plain.skipped[0]!.reason).toMatch(/not positively homogeneous/);
    const clipIn = net.eval.nodes.find((n) => n.opType === "Clip")!.inputs[0]!;
    // channel 0 saturates (max 7 > 6): it must keep s = 1; the others stay below their new ceiling
    const max = Float32Array.of(7, 1, 2, 0.5);
    const res = equalizeCrossLayer(net, { clipInputMax: new Map([[clipIn, max]]) });
    expect(res.pairs).toHaveLength(1);
    const w = toFloat32(res.model.eval.initializers.get("0.weight")!);
    const w0 = toFloat32(net.eval.initializers.get("0.weight")!);
    for (let j = 0; j < 27; j++) expect(w[j]).toBe(w0[j]);
    // for the others, 6 · S_i ≥ observed max: recover S_i from the first layer's rows
    for (let i = 1; i < 4; i++) {
      const s = w0[i * 27]! / w[i * 27]!;
      expect(6 * s).toBeGreaterThanOrEqual(max[i]! * (1 - 1e-6));
    }
  });

  it("finds the depthwise → pointwise pairs of mobilenet-tiny only with ReLU6 ranges", () => {
    const res = equalizeCrossLayer(zooModel("mobilenet-tiny"));
    expect(res.pairs).toEqual([]);
    expect(res.skipped.some((s) => s.first === "blocks.0.dw" && s.second === "blocks.0.pw")).toBe(true);
  });
});
