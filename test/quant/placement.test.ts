import { describe, expect, it } from "vitest";
import { prependNormalization } from "../../src/nn/normalize.js";
import { zooModel } from "../../src/nn/zoo.js";
import { placementTable, placeQuant, quantizableLayers } from "../../src/quant/placement.js";
import { intRange, preset, QConfigError, qconfigFrom } from "../../src/quant/qconfig.js";

function model(name: string) {
  const net = zooModel(name);
  prependNormalization(net, [127], [70]);
  return net;
}

describe("qconfig presets", () => {
  it("give the integer ranges their runtimes need", () => {
    const ort = preset("ort-cpu").default;
    expect(intRange(ort.activation)).toEqual({ qmin: 0, qmax: 255, dtype: "uint8" });
    expect(intRange(ort.weight)).toEqual({ qmin: -128, qmax: 127, dtype: "int8" });
    expect(ort.weight.perChannel && ort.weight.symmetric).toBe(true);
    expect(intRange(preset("ort-cpu-x86-safe").default.weight)).toEqual({
      qmin: -64,
      qmax: 63,
      dtype: "int8",
    });
    const trt = preset("tensorrt").default;
    expect(intRange(trt.activation)).toEqual({ qmin: -128, qmax: 127, dtype: "int8" });
    expect(intRange(trt.weight)).toEqual({ qmin: -127, qmax: 127, dtype: "int8" });
    expect(intRange(preset("w4a8").default.weight)).toEqual({ qmin: -8, qmax: 7, dtype: "int8" });
  });

  it("bad settings are typed errors naming the layer or field", () => {
    expect(() => preset("fp8")).toThrow(/no qconfig preset 'fp8'/);
    expect(() => qconfigFrom("ort-cpu", { weightBits: { conv1: 9 } })).toThrow(QConfigError);
    expect(() => qconfigFrom("ort-cpu", { weightBits: { conv1: 9 } })).toThrow(
      /layer 'conv1' weight: bits must be an integer from 2 to 8/,
    );
    expect(() => placeQuant(model("mnist-cnn"), qconfigFrom("ort-cpu", { keepFloat: ["conv9"] }))).toThrow(
      /layer 'conv9'.*layers: conv1, conv2, fc/,
    );
  });
});

describe("placement", () => {
  it("mnist-cnn: weights of every layer; activations at the input and after each Conv+ReLU (before MaxPool); logits float", () => {
    const net = model("mnist-cnn");
    const p = placeQuant(net, preset("ort-cpu"));
    expect(p.weights.map((w) => [w.layer, w.axis, w.spec.axis])).toEqual([
      ["conv1", 0, 0],
      ["conv2", 0, 0],
      ["fc", 0, 0],
    ]);
    const producers = net.eval.producers();
    expect(p.activations.map((a) => [a.layer, producers.get(a.value)!.opType])).toEqual([
      ["input", "Mul"],
      ["conv1", "Relu"],
      ["conv2", "Relu"],
    ]);
    expect(p.activations.some((a) => a.value === net.output)).toBe(false);
    // LSQ gradient scale 1/√(N·Qp): conv1 has 9 weights per output channel
    expect(p.weights[0]!.spec.gradScale).toBeCloseTo(1 / Math.sqrt(9 * 127), 12);
    expect(p.activations[1]!.spec.gradScale).toBeCloseTo(1 / Math.sqrt(8 * 28 * 28 * 255), 12);
    expect(placementTable(p)[0]).toMatchObject({
      kind: "weight",
      tensor: "conv1.weight",
      scale: "conv1.weight.scale",
      zero_point: "conv1.weight.zero_point",
      qmin: -128,
      qmax: 127,
    });
  });

  it("resnet8: every conv folds its BN; both Add inputs and the pooled features are quantized", () => {
    const net = model("resnet8");
    const p = placeQuant(net, preset("tensorrt"));
    expect(p.weights.filter((w) => w.bn).length).toBe(9);
    const adds = net.eval.nodes.filter((n) => n.opType === "Add" && !n.name.startsWith("normalize"));
    const quantized = new Set(p.activations.map((a) => a.value));
    const producers = net.eval.producers();
    for (const add of adds) {
      for (const i of add.inputs) {
        // the input itself, or (identity shortcut) the value it passes through unchanged
        expect(quantized.has(i), `${add.name} input ${i} (${producers.get(i)?.opType})`).toBe(true);
      }
    }
    expect(p.activations.some((a) => producers.get(a.value)!.opType === "GlobalAveragePool")).toBe(true);
    expect(p.activations.every((a) => a.spec.dtype === "int8")).toBe(true);
    expect(p.weights.every((w) => w.spec.qmin === -127)).toBe(true);
  });

  it("a layer kept in float gets no weight fake-quant and needs no quantized input; its output is still quantized for the next layer", () => {
    const net = model("mnist-cnn");
    const p = placeQuant(net, qconfigFrom("ort-cpu", { keepFloat: ["conv1"], weightBits: { fc: 4 } }));
    expect(p.weights.map((w) => w.layer)).toEqual(["conv2", "fc"]);
    expect(p.activations.map((a) => a.layer)).toEqual(["conv1", "conv2"]);
    expect(p.weights[1]!.spec.qmin).toBe(-8);
    expect(quantizableLayers(net)).toEqual(["conv1", "conv2", "fc"]);
  });
  it("a float layer's output stays float where a residual Add reads it; the Add's other input is still quantized", () => {
    const net = model("resnet8");
    const full = placeQuant(net, preset("ort-cpu"));
    const producers = net.eval.producers();
    const add = net.eval.nodes.find((n) => n.opType === "Add" && !n.name.startsWith("normalize"))!;
    // the Add input a layer's conv (+ folded BN) writes and no layer reads, and that layer
    const fromLayer = full.activations.find(
      (a) =>
        add.inputs.includes(a.value) &&
        full.weights.some((w) => w.layer === a.layer) &&
        !full.weights.some((w) => w.input === a.value),
    )!;
    expect(fromLayer, "an Add input attributed to a layer").toBeDefined();
    const other = add.inputs.find((i) => i !== fromLayer.value)!;
    const p = placeQuant(net, qconfigFrom("ort-cpu", { keepFloat: [fromLayer.layer] }));
    const values = new Set(p.activations.map((a) => a.value));
    expect(values.has(fromLayer.value)).toBe(false);
    expect(p.weights.some((w) => w.layer === fromLayer.layer)).toBe(false);
    // the other input (conv1's ReLU output, which layer1.0.conv1 reads too) is still quantized
    expect(producers.get(other)?.opType).toBe("Relu");
    expect(values.has(other)).toBe(true);
    // gone: that output and the layer's own input (read by it alone); everything else as before
    const input = full.weights.find((w) => w.layer === fromLayer.layer)!.input!;
    const gone = full.activations.map((a) => a.value).filter((v) => !values.has(v));
    expect(gone.sort()).toEqual([fromLayer.value, input].sort());
  });
});
