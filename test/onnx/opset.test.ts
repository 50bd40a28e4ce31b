import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readIdx } from "../../src/data/idx.js";
import { loadModel } from "../../src/onnx/codec.js";
import { OnnxError } from "../../src/onnx/errors.js";
import type { Model } from "../../src/onnx/ir.js";
import { normalizeOpset } from "../../src/onnx/opset.js";
import { f32, numel, type Tensor, tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { DATA } from "../helpers/paths.js";
import { c64, cf, MODELS, maxAbsDiff, opsOf, x } from "./opset-helpers.js";
import { feeds, runOrt, single, values } from "./shapes-helpers.js";

// Converters are tested in opset-converters.test.ts, constant folding in fold.test.ts.

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
    const images = readIdx(join(DATA, "mnist", "t10k-images-idx3-ubyte.gz"));
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
