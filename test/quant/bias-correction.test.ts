import { describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { loadStateDict, type NetModel } from "../../src/nn/model.js";
import { Conv2d, Flatten, Linear, ReLU, sequential } from "../../src/nn/sequential.js";
import { zooModel } from "../../src/nn/zoo.js";
import { cloneGraph } from "../../src/onnx/ir.js";
import { type Tensor, tensor, toFloat32 } from "../../src/onnx/tensor.js";
import { correctBias } from "../../src/quant/bias-correction.js";
import { fakeQuantize } from "../../src/quant/fake-quant.js";
import { captureValues } from "../../src/quant/layer-data.js";
import { placeQuant } from "../../src/quant/placement.js";
import { preset } from "../../src/quant/qconfig.js";
import { weightQParams } from "../../src/quant/qparams.js";

/** The model with its Conv/Gemm weights rounded to nearest on the qconfig's grid (no BN in mnist-cnn). */
function weightQuantized(net: NetModel, q: ReturnType<typeof preset>): NetModel {
  const m: NetModel = { ...net, train: cloneGraph(net.train), eval: cloneGraph(net.eval) };
  const state = new Map<string, Tensor>();
  for (const w of placeQuant(net, q).weights) {
    const t = net.eval.initializers.get(w.weight)!;
    const v = toFloat32(t);
    const p = weightQParams(v, [...t.dims], w.cfg, w.axis);
    state.set(
      w.weight,
      tensor(
        "float32",
        [...t.dims],
        fakeQuantize(v, t.dims, p.scale, p.zeroPoint, w.spec.qmin, w.spec.qmax, w.axis),
      ),
    );
  }
  loadStateDict(m, state);
  return m;
}

/** Per layer output, mean over channels of |E[y_quantized] − E[y_float]| on the given data. */
async function meanShifts(float: NetModel, quant: NetModel, data: Awaited<ReturnType<typeof openDataset>>) {
  const outs = ["conv1_out0", "conv2_out0", float.output];
  const f = await captureValues(float, outs, data, { samples: 512, seed: 7 });
  const q = await captureValues(quant, outs, data, { samples: 512, seed: 7 });
  return outs.map((o) => {
    const a = f.get(o)!;
    const b = q.get(o)!;
    const c = a.shape[0]!;
    const per = a.shape.slice(1).reduce((x, y) => x * y, 1);
    let total = 0;
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      for (let n = 0; n < a.samples; n++)
        for (let k = 0; k < per; k++) {
          const i = (n * c + ch) * per + k;
          s += b.data[i]! - a.data[i]!;
        }
      total += Math.abs(s / (a.samples * per));
    }
    return total / c;
  });
}

describe("bias correction", () => {
  it("shrinks the mean output shift per channel of a 4-bit weight-quantized mnist-cnn on held-out digits", async () => {
    const net = zooModel("mnist-cnn", { seed: 4 });
    expect(net.eval.nodes.map((n) => n.outputs[0])).toContain("conv2_out0");
    const q = preset("w4a8");
    const calib = await openDataset("../shared/data/mnist", { split: "train" });
    const held = await openDataset("../shared/data/mnist", { split: "test" });
    const before = await meanShifts(net, weightQuantized(net, q), held);
    const res = await correctBias(net, calib, { qconfig: q, batches: 8 });
    expect(res.layers.map((l) => l.into)).toEqual(["conv1.bias", "conv2.bias", "fc.bias"]);
    // the float function changes only by the bias; the quantized weights are those of the uncorrected model
    const corrected = weightQuantized(res.model, q);
    const after = await meanShifts(net, corrected, held);
    console.log(
      `mean |output shift| per channel, conv1/conv2/fc: before ${before.map((v) => v.toExponential(2)).join(" ")}; after ${after.map((v) => v.toExponential(2)).join(" ")}`,
    );
    for (let i = 0; i < before.length; i++) expect(after[i]!).toBeLessThan(before[i]! / 2);
  }, 120_000);

  it("corrects a BN-folded layer through β", async () => {
    const net = zooModel("resnet8", { inputShape: [1, 28, 28] });
    const data = await openDataset("../shared/data/mnist", { split: "test" });
    const res = await correctBias(net, data, { qconfig: preset("w4a8"), batches: 1, batchSize: 8 });
    const stem = res.layers.find((l) => l.layer === "conv1")!;
    expect(stem.into).toBe("bn1.bias");
    expect(Math.max(...stem.shift.map(Math.abs))).toBeGreaterThan(0);
    const beta = toFloat32(res.model.eval.initializers.get("bn1.bias")!);
    const beta0 = toFloat32(net.eval.initializers.get("bn1.bias")!);
    for (let i = 0; i < beta.length; i++) expect(beta[i]).toBeCloseTo(beta0[i]! - stem.shift[i]!, 6);
  }, 60_000);

  it("adds a bias parameter to a layer that has none, and the model still runs", async () => {
    const net = sequential("nb", [1, 28, 28], [Conv2d(4, 3, { bias: false }), ReLU(), Flatten(), Linear(10)]);
    const data = await openDataset("../shared/data/mnist", { split: "test" });
    const res = await correctBias(net, data, { qconfig: preset("w4a8"), batches: 2, batchSize: 16 });
    expect(res.layers[0]!.into).toBe("0.bias");
    expect(res.model.params).toEqual([...net.params, "0.bias"]);
    expect(net.params).not.toContain("0.bias");
    const out = await captureValues(res.model, [res.model.output], data, { samples: 4 });
    expect(out.get(res.model.output)!.shape).toEqual([10]);
  }, 60_000);
});
