import { describe, expect, test } from "vitest";
import { modelFlops, stateDict, zooModel, zooNames } from "../../src/nn/index.js";
import { modelOf } from "../../src/onnx/codec.js";
import { attrInt } from "../../src/onnx/ir.js";
import { f32, numel } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { Rng } from "../../src/util/rng.js";

const expectedParams: Record<string, number> = {
  // conv 8·1·9+8, conv 16·8·9+16, fc 784·10+10
  "mnist-cnn": 80 + 1168 + 7850,
  // 896 + 9248 + 18496 + 36928 + 524416 + 1290
  "cifar-cnn": 591274,
};

describe("zoo", () => {
  for (const name of zooNames()) {
    test(`${name}: train and eval graphs run in ORT with a symbolic batch`, async () => {
      const m = zooModel(name, { seed: 1 });
      const x = f32([3, ...m.inputShape], new Rng(7).uniformArray(3 * numel(m.inputShape), -1, 1));
      for (const g of [m.train, m.eval]) {
        const s = await openSession(modelOf(g), { threads: 1 });
        const out = await run(s, { [m.input]: x });
        // classifiers: 10 logits; tiny-det: 10 class heatmaps + 4 box distances per cell of the 96/4 = 24² grid
        expect(out[m.output]!.dims).toEqual(name === "tiny-det" ? [3, 14, 24, 24] : [3, 10]);
        for (const v of out[m.output]!.data as Float32Array) expect(Number.isFinite(v)).toBe(true);
      }
      // the eval graph is inference only
      const bnEval = m.eval.nodes.filter((n) => n.opType === "BatchNormalization");
      expect(bnEval.every((n) => attrInt(n, "training_mode", 0) === 0 && n.outputs.length === 1)).toBe(true);
      expect(m.eval.nodes.some((n) => n.opType === "Dropout")).toBe(false);
      const bnTrain = m.train.nodes.filter((n) => n.opType === "BatchNormalization");
      expect(bnTrain.every((n) => attrInt(n, "training_mode", 0) === 1)).toBe(true);
      expect(bnTrain.length).toBe(bnEval.length);
    });
  }

  test("parameter counts and PyTorch state_dict names", () => {
    for (const [name, count] of Object.entries(expectedParams)) {
      const m = zooModel(name);
      expect(m.params.reduce((a, p) => a + numel(m.train.initializers.get(p)!.dims), 0)).toBe(count);
    }
    const r = zooModel("resnet8");
    expect(r.params.slice(0, 3)).toEqual(["conv1.weight", "bn1.weight", "bn1.bias"]);
    expect(r.buffers.slice(0, 3)).toEqual(["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"]);
    expect(r.params).toContain("layer2.0.downsample.0.weight");
    expect(r.params).toContain("layer3.0.downsample.1.bias");
    expect(r.params).not.toContain("layer1.0.downsample.0.weight");
    expect(r.params.at(-1)).toBe("fc.bias");
    expect(r.train.initializers.get("layer3.0.conv2.weight")!.dims).toEqual([64, 64, 3, 3]);
    expect(r.updates.get("layer1.0.bn1.running_var")).toBe("layer1.0.bn1.running_var.next");
    expect(zooModel("mnist-cnn").params).toEqual([
      "conv1.weight",
      "conv1.bias",
      "conv2.weight",
      "conv2.bias",
      "fc.weight",
      "fc.bias",
    ]);
  });

  test("same seed gives the same weights, another seed other weights", () => {
    const a = stateDict(zooModel("cifar-cnn", { seed: 3 }));
    const b = stateDict(zooModel("cifar-cnn", { seed: 3 }));
    const c = stateDict(zooModel("cifar-cnn", { seed: 4 }));
    for (const [k, t] of a)
      expect(Buffer.from(b.get(k)!.data as Float32Array).equals(Buffer.from(t.data as Float32Array))).toBe(
        true,
      );
    expect((c.get("conv2.weight")!.data as Float32Array)[0]).not.toBe(
      (a.get("conv2.weight")!.data as Float32Array)[0],
    );
  });

  test("unknown model names are refused with the list", () => {
    expect(() => zooModel("resnet50")).toThrow(/no model named 'resnet50'.*mnist-cnn/);
  });
});

describe("analytic FLOPs", () => {
  test("mnist-cnn: 2·MACs of conv1 (8·28·28 outputs × 9), conv2 (16·14·14 × 72) and fc (10 × 784)", () => {
    const f = modelFlops(zooModel("mnist-cnn"));
    const [c1, c2, fc] = [8 * 28 * 28 * 9, 16 * 14 * 14 * 72, 10 * 784].map((m) => 2 * m);
    expect(f.layers.map((l) => l.forward)).toEqual([c1, c2, fc]);
    expect(f.forward).toBe(c1! + c2! + fc!);
    // conv1 reads the input: no input gradient, so 2× its forward; the others 3×
    expect(f.trainingStep).toBe(2 * c1! + 3 * c2! + 3 * fc!);
  });

  test("depthwise convolutions count their per-group fan-in", () => {
    const f = modelFlops(zooModel("mobilenet-tiny"));
    const dw0 = f.layers.find((l) => l.node === "blocks.0.dw")!;
    // 16 channels, stride 2 on 32×32 → 16×16 outputs, 9 MACs each
    expect(dw0.forward).toBe(2 * 16 * 16 * 16 * 9);
  });
});
