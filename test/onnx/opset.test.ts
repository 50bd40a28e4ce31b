import { describe, expect, it } from "vitest";
import { readIdx } from "../../src/data/idx.js";
import { encodeModel, loadModel } from "../../src/onnx/codec.js";
import { OnnxError } from "../../src/onnx/errors.js";
import { foldConstants } from "../../src/onnx/fold.js";
import { attr, Graph, type Model } from "../../src/onnx/ir.js";
import { normalizeOpset, WORKING_OPSET } from "../../src/onnx/opset.js";
import { f32, i64, numel, type Tensor, tensor, toFloat32 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { feeds, type In, runOrt, single, values } from "./shapes-helpers.js";

const MODELS = "/work/shared/models";
const x = (shape: (number | string)[], name = "x"): In => ({ name, shape });
const c64 = (name: string, v: number[]): In => ({ name, init: i64([v.length], v) });
const cf = (name: string, dims: number[], v?: number[]): In => ({
  name,
  init: f32(dims, v ?? Array.from(values(numel(dims), 5))),
});

function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(a.dims).toEqual(b.dims);
  const p = toFloat32(a);
  const q = toFloat32(b);
  let m = 0;
  for (let i = 0; i < p.length; i++) m = Math.max(m, Math.abs(p[i]! - q[i]!));
  return m;
}

/** ORT on the model as written, then ORT on the normalised model: same outputs (to `tol`), opset 17. */
async function sameAsOrt(m: Model, tol = 0): Promise<Model> {
  const f = feeds(m);
  const before = await runOrt(encodeModel(m), f);
  normalizeOpset(m);
  expect(m.opsets[""]).toBe(WORKING_OPSET);
  const after = await runOrt(m, f);
  for (const [k, v] of Object.entries(before)) {
    expect(after[k]!.dtype, k).toBe(v.dtype);
    if (v.dtype === "bool" || v.dtype === "int64")
      expect(Array.from(after[k]!.data as ArrayLike<unknown>)).toEqual(
        Array.from(v.data as ArrayLike<unknown>),
      );
    else expect(maxAbsDiff(after[k]!, v), k).toBeLessThanOrEqual(tol);
  }
  return m;
}

const opsOf = (m: Model) => m.graph.nodes.map((n) => n.opType);

describe("mnist-zoo-2018-opset1 normalised equals mnist-8", () => {
  it("holds the same weights (after the legacy broadcast reshape of the biases)", () => {
    const zoo = normalizeOpset(loadModel(`${MODELS}/mnist-zoo-2018-opset1.onnx`), { fold: false });
    const m8 = loadModel(`${MODELS}/mnist-8.onnx`);
    let compared = 0;
    for (const [name, t] of m8.graph.initializers) {
      const z = zoo.graph.initializers.get(name);
      if (name.endsWith("_shape")) continue; // reshape targets: mnist-8 holds them as initializers, opset 1 as attributes
      expect(z, name).toBeDefined();
      expect(z!.dims, name).toEqual(t.dims);
      expect(Array.from(z!.data as Float32Array), name).toEqual(Array.from(t.data as Float32Array));
      compared++;
    }
    expect(compared).toBe(6);
  });

  it("gives the same logits on the first 1,000 MNIST test images (one image per run)", async () => {
    const images = readIdx("/work/shared/data/mnist/t10k-images-idx3-ubyte.gz");
    const zoo = normalizeOpset(loadModel(`${MODELS}/mnist-zoo-2018-opset1.onnx`));
    expect(zoo.opsets[""]).toBe(17);
    const a = await openSession(zoo, { threads: 1 });
    const b = await openSession(`${MODELS}/mnist-8.onnx`, { threads: 1 });
    let maxDiff = 0;
    let sameTop1 = 0;
    const N = 1000;
    for (let i = 0; i < N; i++) {
      const px = Float32Array.from(images.data.subarray(i * 784, (i + 1) * 784)); // raw 0–255 pixels
      const feed = { Input3: f32([1, 1, 28, 28], px) };
      const ya = (await run(a, feed)).Plus214_Output_0!;
      const yb = (await run(b, feed)).Plus214_Output_0!;
      maxDiff = Math.max(maxDiff, maxAbsDiff(ya, yb));
      const top = (t: Tensor) => {
        const v = t.data as Float32Array;
        return v.indexOf(Math.max(...v));
      };
      if (top(ya) === top(yb)) sameTop1++;
    }
    await a.release();
    await b.release();
    console.log(
      `mnist-zoo-2018-opset1 (normalised) vs mnist-8 on ${N} images: max |Δlogit| = ${maxDiff}, same top-1 ${sameTop1}/${N}`,
    );
    expect(maxDiff).toBeLessThanOrEqual(1e-4);
    expect(sameTop1).toBe(N);
  });
});

describe("every shared model normalises and runs in ORT with the same outputs", () => {
  for (const file of ["mnist-8", "cifar10-imageclassifier", "iris-mlp", "squeezenet1.0-fp16"]) {
    it(file, async () => {
      const m = loadModel(`${MODELS}/${file}.onnx`);
      const real = m.graph.inputs.filter((v) => !m.graph.initializers.has(v.name));
      const f: Record<string, Tensor> = {};
      for (const v of real) {
        const dims = v.shape!.map((d) => (typeof d === "number" ? d : 2));
        const r = values(numel(dims), 3);
        f[v.name] = v.dtype === "float16" ? tensor("float32", dims, r) : tensor("float32", dims, r);
      }
      // fp16 inputs: feed the same values as float16 bits
      if (real[0]!.dtype === "float16") {
        const { floatToHalf } = await import("../../src/onnx/dtype.js");
        const v = f[real[0]!.name]!;
        f[real[0]!.name] = tensor("float16", v.dims, Uint16Array.from(v.data as Float32Array, floatToHalf));
      }
      const before = await runOrt(`${MODELS}/${file}.onnx` as unknown as Uint8Array, f);
      const nodesBefore = m.graph.nodes.length;
      normalizeOpset(m);
      expect(m.opsets[""]).toBe(17);
      expect(m.graph.inputs.map((v) => v.name)).toEqual(real.map((v) => v.name));
      const after = await runOrt(m, f);
      for (const [k, v] of Object.entries(before)) {
        const d = maxAbsDiff(after[k]!, v);
        console.log(
          `${file}: ${k} max |Δ| = ${d} (${nodesBefore} → ${m.graph.nodes.length} nodes: ${[...new Set(opsOf(m))].join(" ")})`,
        );
        expect(d).toBeLessThanOrEqual(v.dtype === "float16" ? 1e-3 : 1e-6);
      }
    });
  }
});

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

describe("what cannot be converted raises OnnxError naming node and op", () => {
  const cases: [string, () => Model, RegExp][] = [
    [
      "unknown op",
      () => single("Einsum", [x([2, 3])], { equation: "ij->ji" }, { opset: 12, name: "e1" }),
      /node 'e1': Einsum \(opset 12\): qat has no conversion of Einsum to opset 17 \(inputs \[2,3\]\)/,
    ],
    [
      "Pad wrap",
      () => single("Pad", [x([2, 3]), c64("pads", [1, 1, 1, 1])], { mode: "wrap" }, { opset: 19, name: "p" }),
      /node 'p': Pad \(opset 19\): mode 'wrap' was added in opset 19 and has no opset 17 form/,
    ],
    [
      "Resize antialias",
      () =>
        single(
          "Resize",
          [x([1, 1, 4, 4]), "", cf("s", [4], [1, 1, 0.5, 0.5])],
          { antialias: 1, mode: "linear" },
          { opset: 18 },
        ),
      /Resize \(opset 18\): antialias was added in opset 18 and has no opset 17 form/,
    ],
    [
      "ScatterElements max",
      () =>
        single("ScatterElements", [x([3]), c64("i", [0]), cf("u", [1])], { reduction: "max" }, { opset: 18 }),
      /ScatterElements \(opset 18\): reduction 'max' was added in opset 18/,
    ],
    [
      "BatchNormalization spatial=0",
      () =>
        single(
          "BatchNormalization",
          [x([1, 2, 3]), cf("s", [2, 3]), cf("b", [2, 3]), cf("m", [2, 3]), cf("v", [2, 3])],
          { spatial: 0, is_test: 1 },
          { opset: 6 },
        ),
      /BatchNormalization \(opset 6\): spatial=0 \(per-activation statistics\) has no opset 17 form/,
    ],
    [
      "Softmax-11 of unknown rank",
      () => {
        const m = single("Softmax", [x([2, 3])], {}, { opset: 11 });
        m.graph.inputs[0]!.shape = undefined;
        return m;
      },
      /Softmax \(opset 11\): the input's rank must be known/,
    ],
    [
      "QuantizeLinear int4",
      () =>
        single(
          "QuantizeLinear",
          [x([2]), cf("s", [], [1]), { name: "z", init: tensor("int4", [], [0]) }],
          {},
          { opset: 21 },
        ),
      /QuantizeLinear \(opset 21\): type int4 was added in opset 21 and has no opset 17 form/,
    ],
    [
      "ReduceMean-18 runtime axes",
      () => single("ReduceMean", [x([2, 3]), { name: "a", dtype: "int64", shape: [1] }], {}, { opset: 18 }),
      /ReduceMean \(opset 18\): axes must be a constant/,
    ],
    ["opset 22", () => single("Relu", [x([2])], {}, { opset: 22 }), /ai.onnx opset 22 is outside the 1–21/],
  ];
  for (const [name, make, re] of cases) {
    it(name, () => {
      let err: unknown;
      try {
        normalizeOpset(make());
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(OnnxError);
      expect((err as Error).message).toMatch(re);
    });
  }
});

describe("constant folding", () => {
  it("folds a static Shape→Gather→Unsqueeze→Concat chain into the Reshape target", async () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: [2, 16, 4, 4] });
    const s = g.op("Shape", ["x"]);
    const b = g.op("Gather", [s, g.constant("zero", i64([], [0]))], { axis: 0 });
    const u = g.op("Unsqueeze", [b, g.constant("ax", i64([1], [0]))]);
    const target = g.op("Concat", [u, g.constant("m1", i64([1], [-1]))], { axis: 0 });
    g.op("Reshape", ["x", target], {}, { output: "y" });
    g.outputs.push({ name: "y" });
    const m = (await import("../../src/onnx/codec.js")).modelOf(g);
    const f = feeds(m);
    const before = await runOrt(encodeModel(m), f);
    expect(foldConstants(g)).toBe(4);
    expect(opsOf(m)).toEqual(["Reshape"]);
    expect(Array.from(g.initializers.get(target)!.data as BigInt64Array)).toEqual([2n, -1n]);
    expect(g.initializers.has("zero")).toBe(false); // read only by folded nodes
    const after = await runOrt(m, f);
    expect(after.y!.dims).toEqual([2, 256]);
    expect(Array.from(after.y!.data as Float32Array)).toEqual(Array.from(before.y!.data as Float32Array));
  });

  it("evaluates each folded op exactly as ORT does (int64 beyond 2^53 included)", async () => {
    const g = new Graph();
    const big = g.constant("big", i64([2], [2n ** 60n + 1n, -(2n ** 62n) + 3n]));
    const small = g.constant("small", i64([2], [2n ** 53n + 1n, 7n]));
    const w = g.constant("w", f32([2, 3], [1.5, -2.25, 3.1, 1e-7, 65504.5, -0.1]));
    const outs: string[] = [];
    const out = (v: string) => outs.push(g.op("Identity", [v]));
    out(g.op("Add", [big, small]));
    out(g.op("Sub", [big, small]));
    out(g.op("Mul", [small, g.constant("k", i64([1], [3]))]));
    out(g.op("Div", [g.op("Neg", [big]), g.constant("d", i64([], [7]))]));
    out(g.op("Transpose", [w], { perm: [1, 0] }));
    out(g.op("Cast", [w], { to: 7 }));
    out(g.op("Cast", [w], { to: 10 }));
    out(g.op("Cast", [big], { to: 6 }));
    out(g.op("Cast", [w], { to: 9 }));
    out(g.op("Div", [w, g.constant("three", f32([1], [3]))]));
    out(g.op("Mul", [w, w]));
    out(
      g.op("Slice", [
        w,
        g.constant("st", i64([2], [1, -1])),
        g.constant("en", i64([2], [-3, -100])),
        g.constant("sa", i64([2], [1, 0])),
        g.constant("sp", i64([2], [-1, -1])),
      ]),
    );
    out(g.op("Gather", [w, g.constant("gi", i64([2, 2], [2, 0, -1, 1]))], { axis: 1 }));
    const row = g.op("Unsqueeze", [
      g.op("Squeeze", [
        g.op("Reshape", [w, g.constant("s6", i64([3], [1, 6, 1]))]),
        g.constant("sq", i64([2], [0, 2])),
      ]),
      g.constant("uz", i64([1], [0])),
    ]);
    out(g.op("Concat", [row, g.op("Reshape", [w, g.constant("s16", i64([2], [1, 6]))]), row], { axis: 0 }));
    out(g.op("Concat", [w, w], { axis: -1 }));
    out(g.op("Flatten", [g.op("Reshape", [w, g.constant("s3", i64([3], [3, 1, 2]))])], { axis: 2 }));
    out(g.op("ConstantOfShape", [g.constant("cs", i64([2], [2, 2]))], { value: tensor("int32", [1], [-4]) }));
    out(
      g.op("Range", [
        g.constant("r0", i64([], [10])),
        g.constant("r1", i64([], [-3])),
        g.constant("r2", i64([], [-4])),
      ]),
    );
    out(g.op("Constant", [], { value: f32([2], [0.5, 0.25]) }));
    g.outputs = outs.map((name) => ({ name }));
    const m = (await import("../../src/onnx/codec.js")).modelOf(g);
    const before = await runOrt(encodeModel(m), {});
    const nodes = g.nodes.length;
    const folded = foldConstants(g);
    expect(folded).toBe(nodes - outs.length);
    expect(new Set(opsOf(m))).toEqual(new Set(["Identity"]));
    const after = await runOrt(m, {});
    for (const o of outs) {
      expect(after[o]!.dtype, o).toBe(before[o]!.dtype);
      expect(after[o]!.dims, o).toEqual(before[o]!.dims);
      expect(Array.from(after[o]!.data as ArrayLike<unknown>), o).toEqual(
        Array.from(before[o]!.data as ArrayLike<unknown>),
      );
    }
    expect((after[outs[0]!]!.data as BigInt64Array)[0]).toBe(2n ** 60n + 2n ** 53n + 2n);
  });

  it("leaves alone nodes fed by overridable inputs and nodes producing graph outputs", () => {
    const g = new Graph();
    g.initializers.set("w", f32([2], [1, 2]));
    g.inputs.push({ name: "w", dtype: "float32", shape: [2] }); // IR ≥ 4: an initializer listed as input can be fed
    const a = g.op("Neg", ["w"]);
    g.op("Identity", [g.op("Neg", [g.constant("c", f32([1], [3]))])], {}, { output: "y" });
    g.outputs.push({ name: a }, { name: "y" });
    expect(foldConstants(g)).toBe(1);
    expect(opsOf({ graph: g } as Model)).toEqual(["Neg", "Identity"]);
  });
});

describe("BatchNormalization modes", () => {
  it("opset 9 with its mean/var outputs used becomes training_mode=1 (ORT refuses that form at opset 9; checked against batch statistics)", async () => {
    const m = single(
      "BatchNormalization",
      [x([4, 3, 2]), cf("s", [3]), cf("b", [3]), cf("m", [3]), cf("v", [3], [1, 2, 3])],
      { momentum: 0.8 },
      { outputs: 3, opset: 9 },
    );
    const f = feeds(m);
    normalizeOpset(m);
    expect(m.graph.nodes[0]!.attrs.training_mode).toEqual({ type: "int", value: 1 });
    expect(m.graph.nodes[0]!.outputs).toEqual(["y0", "y1", "y2"]);
    const after = await runOrt(m, f);
    // reference: Y normalised with the batch statistics (biased variance), running mean = 0.8·m + 0.2·batch mean
    const xv = f.x!.data as Float32Array;
    const [s, b, mu] = ["s", "b", "m"].map((k) => m.graph.initializers.get(k)!.data as Float32Array);
    for (let c = 0; c < 3; c++) {
      const vals = [0, 1, 2, 3].flatMap((nIdx) => [0, 1].map((h) => xv[nIdx * 6 + c * 2 + h]!));
      const mean = vals.reduce((p, q) => p + q, 0) / vals.length;
      const variance = vals.reduce((p, q) => p + (q - mean) ** 2, 0) / vals.length;
      expect((after.y1!.data as Float32Array)[c]).toBeCloseTo(0.8 * mu![c]! + 0.2 * mean, 5);
      const y00 = (after.y0!.data as Float32Array)[c * 2]!;
      expect(y00).toBeCloseTo(((vals[0]! - mean) / Math.sqrt(variance + 1e-5)) * s![c]! + b![c]!, 4);
    }
  });
});
