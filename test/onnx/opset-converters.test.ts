import { describe, expect, it } from "vitest";
import { encodeModel } from "../../src/onnx/codec.js";
import { attr, type Model } from "../../src/onnx/ir.js";
import { normalizeOpset } from "../../src/onnx/opset.js";
import { f32, i64, tensor } from "../../src/onnx/tensor.js";
import { c64, cf, opsOf, sameAsOrt, x } from "./opset-helpers.js";
import { feeds, runOrt, single } from "./shapes-helpers.js";

describe("converters, checked against ORT running the original opset", () => {
  const cases: [string, () => Model, string[]?][] = [
    [
      "Softmax-11 axis 1 on 3-D (coerced to 2-D)",
      () => single("Softmax", [x([2, 3, 4])], { axis: 1 }, { opset: 11 }),
      ["Flatten", "Softmax", "Reshape"],
    ],
    [
      "LogSoftmax-11 default axis, symbolic batch",
      () => single("LogSoftmax", [x(["N", 3, 4])], {}, { opset: 11 }),
      ["Shape", "Flatten", "LogSoftmax", "Reshape"],
    ],
    ["Hardmax-11 axis 0", () => single("Hardmax", [x([2, 3])], { axis: 0 }, { opset: 11 })],
    ["Softmax-11 last axis", () => single("Softmax", [x([2, 3])], { axis: 1 }, { opset: 11 }), ["Softmax"]],
    [
      "Upsample-9 nearest",
      () => single("Upsample", [x([1, 2, 3, 4]), cf("s", [4], [1, 1, 2, 3])], {}, { opset: 9 }),
      ["Resize"],
    ],
    [
      "Upsample-9 linear",
      () =>
        single("Upsample", [x([1, 2, 3, 4]), cf("s", [4], [1, 1, 2, 2.5])], { mode: "linear" }, { opset: 9 }),
    ],
    [
      "Upsample-7 scales attribute",
      () => single("Upsample", [x([1, 1, 3, 3])], { scales: attr.floats([1, 1, 2, 2]) }, { opset: 7 }),
      ["Resize"],
    ],
    [
      "Resize-10 nearest, fractional scales",
      () => single("Resize", [x([1, 1, 5, 7]), cf("s", [4], [1, 1, 1.5, 0.6])], {}, { opset: 10 }),
    ],
    [
      "Resize-10 nearest, all scales < 1 (ORT rounds up)",
      () => single("Resize", [x([1, 1, 9, 11]), cf("s", [4], [1, 1, 0.6, 0.4])], {}, { opset: 10 }),
      ["Resize"],
    ],
    [
      "Resize-10 nearest, mixed scales (two Resizes)",
      () => single("Resize", [x([1, 2, 9, 11]), cf("s", [4], [1, 1, 0.4, 2.6])], {}, { opset: 10 }),
      ["Resize", "Resize"],
    ],
    [
      "Resize-10 linear",
      () =>
        single("Resize", [x([1, 1, 4, 4]), cf("s", [4], [1, 1, 2, 1.75])], { mode: "linear" }, { opset: 10 }),
    ],
    [
      "Resize-18 axes",
      () =>
        single(
          "Resize",
          [x([1, 2, 4, 4]), "", cf("s", [2], [2, 0.5])],
          { axes: [2, 3], mode: "nearest" },
          { opset: 18 },
        ),
    ],
    ["Clip-6 attributes", () => single("Clip", [x([3, 4])], { min: -0.25, max: 0.5 }, { opset: 6 })],
    ["Clip-6 min only", () => single("Clip", [x([3, 4])], { min: 0.1 }, { opset: 6 })],
    [
      "Pad-2 constant value",
      () => single("Pad", [x([2, 3])], { pads: [1, 0, 2, 1], value: 1.5 }, { opset: 2 }),
    ],
    [
      "Pad-2 reflect",
      () => single("Pad", [x([3, 4])], { pads: [0, 2, 0, 1], mode: "reflect" }, { opset: 2 }),
    ],
    [
      "Pad-18 axes",
      () =>
        single(
          "Pad",
          [x([2, 3, 4]), c64("p", [1, 2, 0, 3]), cf("v", [], [0.5]), c64("ax", [0, -1])],
          {},
          { opset: 18 },
        ),
    ],
    [
      "Slice-9 attributes",
      () => single("Slice", [x([5, 6])], { starts: [1, -4], ends: [4, 100], axes: [0, 1] }, { opset: 9 }),
    ],
    [
      "Squeeze-11 / Unsqueeze-11 axes attribute",
      () => single("Squeeze", [x([1, 3, 1])], { axes: [0, 2] }, { opset: 11 }),
    ],
    ["Unsqueeze-11", () => single("Unsqueeze", [x([3, 2])], { axes: [0, 3] }, { opset: 11 })],
    [
      "Split-11 split attribute",
      () => single("Split", [x([7, 2])], { split: [3, 4] }, { outputs: 2, opset: 11 }),
    ],
    [
      "Split-18 num_outputs, uneven",
      () => single("Split", [x([7, 2])], { num_outputs: 3 }, { outputs: 3, opset: 18 }),
    ],
    [
      "ReduceSum-11 axes attribute",
      () => single("ReduceSum", [x([2, 3, 4])], { axes: [1], keepdims: 0 }, { opset: 11 }),
    ],
    [
      "ReduceMean-18 axes input",
      () => single("ReduceMean", [x([2, 3, 4]), c64("a", [0, 2])], {}, { opset: 18 }),
    ],
    [
      "ReduceMax-18 noop_with_empty_axes",
      () => single("ReduceMax", [x([2, 3])], { noop_with_empty_axes: 1 }, { opset: 18 }),
      ["Identity"],
    ],
    ["ReduceL2-18 all axes", () => single("ReduceL2", [x([2, 3])], { keepdims: 0 }, { opset: 18 })],
    ["Dropout-10 ratio attribute", () => single("Dropout", [x([2, 3])], { ratio: 0.3 }, { opset: 10 })],
    ["Dropout-7", () => single("Dropout", [x([2, 3])], { ratio: 0.3 }, { opset: 7 })],
    [
      "BatchNormalization-7 spatial=1",
      () =>
        single(
          "BatchNormalization",
          [x([2, 3, 4]), cf("s", [3]), cf("b", [3]), cf("m", [3]), cf("v", [3], [1, 2, 3])],
          { spatial: 1, epsilon: 1e-3 },
          { opset: 7 },
        ),
    ],
    [
      "BatchNormalization-9",
      () =>
        single(
          "BatchNormalization",
          [x([2, 3, 2, 2]), cf("s", [3]), cf("b", [3]), cf("m", [3]), cf("v", [3], [1, 2, 3])],
          {},
          { opset: 9 },
        ),
    ],
    [
      "Reshape-4 shape attribute",
      () => single("Reshape", [x([2, 3, 4])], { shape: [4, 0, -1] }, { opset: 4 }),
      ["Reshape"],
    ],
    [
      "Scatter-9 → ScatterElements",
      () =>
        single(
          "Scatter",
          [x([3, 4]), { name: "i", init: i64([1, 2], [0, 3]) }, cf("u", [1, 2])],
          { axis: 1 },
          { opset: 9 },
        ),
      ["ScatterElements"],
    ],
    [
      "AveragePool-19 unit dilations",
      () =>
        single("AveragePool", [x([1, 1, 5, 5])], { kernel_shape: [2, 2], dilations: [1, 1] }, { opset: 19 }),
    ],
    ["Cast-19 saturate", () => single("Cast", [x([2, 3])], { to: 7, saturate: 1 }, { opset: 19 })],
    [
      "QuantizeLinear-21 output_dtype with zero point",
      () =>
        single(
          "QuantizeLinear",
          [x([2, 3]), cf("s", [], [0.01]), { name: "z", init: tensor("int8", [], [3]) }],
          { output_dtype: 3 },
          { opset: 21 },
        ),
    ],
    [
      "QuantizeLinear-21 int8 output_dtype without zero point (per-axis)",
      () =>
        single(
          "QuantizeLinear",
          [x([2, 3]), cf("s", [3], [0.01, 0.02, 0.03])],
          { output_dtype: 3, axis: 1 },
          { opset: 21 },
        ),
    ],
    [
      "Gemm-9",
      () => single("Gemm", [x([2, 3]), cf("b", [3, 4]), cf("c", [4])], { alpha: 0.5 }, { opset: 9 }),
    ],
  ];
  for (const [name, make, ops] of cases) {
    it(name, async () => {
      const m = await sameAsOrt(make(), 1e-6);
      if (ops) expect(opsOf(m)).toEqual(ops);
      expect(m.graph.outputs.map((o) => o.name)).toEqual(make().graph.outputs.map((o) => o.name));
    });
  }
});

describe("converters for opsets ORT no longer runs (independent references)", () => {
  it("Dropout-10's mask follows the opset-12 spec in inference (all true); ORT's legacy kernel returns all false", async () => {
    const m = single("Dropout", [x([2, 3])], { ratio: 0.3 }, { outputs: 2, opset: 10 });
    const f = feeds(m);
    const old = await runOrt(encodeModel(m), f);
    normalizeOpset(m);
    const y = await runOrt(m, f);
    expect(Array.from(y.y0!.data as Float32Array)).toEqual(Array.from(f.x!.data as Float32Array));
    expect(Array.from(y.y1!.data as Uint8Array)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Array.from(old.y1!.data as Uint8Array)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it("Add-6 broadcast with axis=1: a [3] bias on [2,3,2,2], constant and graph input", async () => {
    for (const constant of [true, false]) {
      const bias = [10, 20, 30];
      const m = single(
        "Add",
        [x([2, 3, 2, 2]), constant ? cf("b", [3], bias) : x([3], "b")],
        { broadcast: 1, axis: 1 },
        { opset: 6 },
      );
      normalizeOpset(m);
      if (constant) expect(m.graph.initializers.get("b")!.dims).toEqual([3, 1, 1]);
      else expect(opsOf(m)).toEqual(["Unsqueeze", "Add"]);
      const f = feeds(m);
      if (!constant) f.b = f32([3], bias);
      const y = (await runOrt(m, f)).y0!.data as Float32Array;
      const xv = f.x!.data as Float32Array;
      // reference: y[n,c,h,w] = x[n,c,h,w] + b[c]
      for (let i = 0; i < 24; i++) expect(y[i]).toBe(Math.fround(xv[i]! + bias[Math.floor(i / 4) % 3]!));
    }
  });

  it("Mul-1 broadcast without axis (suffix alignment) and consumed_inputs", async () => {
    const m = single(
      "Mul",
      [x([2, 3]), cf("b", [3], [1, 2, 3])],
      { broadcast: 1, consumed_inputs: [0, 0] },
      { opset: 1 },
    );
    normalizeOpset(m);
    expect(m.graph.nodes[0]!.attrs).toEqual({});
    const f = feeds(m);
    const y = (await runOrt(m, f)).y0!.data as Float32Array;
    const xv = f.x!.data as Float32Array;
    for (let i = 0; i < 6; i++) expect(y[i]).toBe(Math.fround(xv[i]! * ((i % 3) + 1)));
  });

  it("Cast-1 type name, Concat-1 default axis, Gemm-6 broadcast, Tile-1, BatchNormalization-6 is_test", async () => {
    const cast = normalizeOpset(single("Cast", [x([2])], { to: "INT32" }, { opset: 1 }));
    expect(cast.graph.nodes[0]!.attrs.to).toEqual({ type: "int", value: 6 });
    const cat = normalizeOpset(single("Concat", [x([2, 3]), x([2, 1], "z")], {}, { opset: 1 }));
    expect(cat.graph.nodes[0]!.attrs.axis).toEqual({ type: "int", value: 1 });
    expect(cat.graph.outputs[0]!.shape).toEqual([2, 4]);
    const gemm = normalizeOpset(
      single("Gemm", [x([2, 3]), cf("b", [3, 4]), cf("c", [4])], { broadcast: 1 }, { opset: 6 }),
    );
    expect(Object.keys(gemm.graph.nodes[0]!.attrs)).toEqual([]);
    const tile = normalizeOpset(single("Tile", [x([2, 3]), c64("t", [3]), c64("a", [1])], {}, { opset: 1 }));
    expect(
      Array.from(tile.graph.initializers.get(tile.graph.nodes[0]!.inputs[1]!)!.data as BigInt64Array),
    ).toEqual([1n, 3n]);
    expect(tile.graph.outputs[0]!.shape).toEqual([2, 9]);
    const bn = single(
      "BatchNormalization",
      [x([1, 2, 3]), cf("s", [2]), cf("b", [2]), cf("m", [2]), cf("v", [2], [1, 4])],
      { is_test: 1, spatial: 1, consumed_inputs: [0, 0, 0, 1, 1] },
      { outputs: 5, opset: 6 },
    );
    bn.graph.outputs = [{ name: "y0" }];
    normalizeOpset(bn);
    expect(bn.graph.nodes[0]!.outputs).toEqual(["y0"]);
    expect(bn.graph.nodes[0]!.attrs).toEqual({});
    // reference: y = (x - m) / sqrt(v + eps) * s + b, eps = 1e-5
    const f = feeds(bn);
    const y = (await runOrt(bn, f)).y0!.data as Float32Array;
    const [xv, s, b, mu, v] = [f.x!, ...["s", "b", "m", "v"].map((k) => bn.graph.initializers.get(k)!)].map(
      (t) => t.data as Float32Array,
    );
    for (let i = 0; i < 6; i++) {
      const c = Math.floor(i / 3);
      expect(y[i]).toBeCloseTo(((xv![i]! - mu![c]!) / Math.sqrt(v![c]! + 1e-5)) * s![c]! + b![c]!, 5);
    }
  });
});
