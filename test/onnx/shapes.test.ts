import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/onnx/codec.js";
import { type Dim, Graph, type Model } from "../../src/onnx/ir.js";
import { normalizeOpset } from "../../src/onnx/opset.js";
import { broadcastShapes, dtypeOf, inferModelShapes, inferShapes, shapeOf } from "../../src/onnx/shapes.js";
import { i64, numel, type Tensor, tensor } from "../../src/onnx/tensor.js";
import { BATCH, c64, cf, inferError, MODELS, x } from "./shapes-fixtures.js";
import { runOrt, single } from "./shapes-helpers.js";

// The per-op rules, each checked against ORT, are in shapes-ort.test.ts.

describe("broadcastShapes", () => {
  it("follows numpy and keeps symbols", () => {
    expect(broadcastShapes([2, 1, 4], [3, 1])).toEqual([2, 3, 4]);
    expect(broadcastShapes(["N", 3], [1, 3])).toEqual(["N", 3]);
    expect(broadcastShapes(["N", 1], [5])).toEqual(["N", 5]);
    expect(broadcastShapes(["N"], ["M"])).toEqual([null]);
    expect(broadcastShapes([null, 4], [7, 1])).toEqual([7, 4]);
    expect(() => broadcastShapes([3], [4])).toThrow(/do not broadcast \(3 vs 4\)/);
  });
});

describe("symbolic dims", () => {
  it("propagate through Conv, pools, Gemm and elementwise ops", () => {
    const m = single("Conv", [x(["N", 3, "H", 8]), cf("w", [4, 3, 3, 3])], { pads: [1, 1, 1, 1] });
    const known = inferModelShapes(m);
    expect(known.get("y0")!.shape).toEqual(["N", 4, "H", 8]);
    const p = single("MaxPool", [x(["N", 3, "H", 8])], { kernel_shape: [2, 2], strides: [2, 2] });
    expect(inferModelShapes(p).get("y0")!.shape).toEqual(["N", 3, null, 4]);
  });

  it("PyTorch's dynamic flatten (Shape→Gather→Unsqueeze→Concat→Reshape) resolves to [N, 256]", () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: ["batch", 16, 4, 4] });
    const s = g.op("Shape", ["x"]);
    const b = g.op("Gather", [s, g.constant("zero", i64([], [0]))], { axis: 0 });
    const u = g.op("Unsqueeze", [b, g.constant("ax", i64([1], [0]))]);
    const target = g.op("Concat", [u, g.constant("m1", i64([1], [-1]))], { axis: 0 });
    const y = g.op("Reshape", ["x", target]);
    g.outputs.push({ name: y });
    const known = inferShapes(g);
    expect(known.get(target)!.value).toEqual(["batch", -1]);
    expect(known.get(y)!.shape).toEqual(["batch", 256]);
    expect(g.outputs[0]!.shape).toEqual(["batch", 256]);
    expect(g.valueInfo.get(b)).toEqual({ name: b, dtype: "int64", shape: [] });
  });

  it("Shape→Slice→Concat and Size track values; Mul of a symbol by 1 keeps it", () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: ["N", 3, 4] });
    const s = g.op("Shape", ["x"]);
    const head = g.op("Slice", [s, g.constant("st", i64([1], [0])), g.constant("en", i64([1], [1]))]);
    const one = g.op("Mul", [head, g.constant("one", i64([1], [1]))]);
    const target = g.op("Concat", [one, g.constant("t", i64([1], [12]))], { axis: 0 });
    const y = g.op("Reshape", ["x", target]);
    const n = g.op("Size", ["x"]);
    const known = inferShapes(g);
    expect(known.get(y)!.shape).toEqual(["N", 12]);
    expect(known.get(n)!.value).toEqual([null]);
  });

  it("unknown ops and other domains leave outputs unknown; the file's value_info is kept", () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: [2, 3] });
    const a = g.op("FancyOp", ["x"], {}, { domain: "com.example" });
    const b = g.op("NotAnOnnxOp", [a]);
    g.valueInfo.set(b, { name: b, dtype: "float32", shape: [2, null] });
    const c = g.op("Relu", [b]);
    const known = inferShapes(g);
    expect(known.get(a)).toEqual({ dtype: undefined, shape: undefined, value: undefined });
    expect(known.get(c)!.shape).toEqual([2, null]);
    expect(shapeOf(g, c)).toEqual([2, null]);
    expect(dtypeOf(g, c)).toBe("float32");
  });

  it("shapeOf/dtypeOf read inputs and initializers", () => {
    const m = single("Relu", [x(["N", 2]), cf("w", [3, 4])]);
    expect(shapeOf(m.graph, "x")).toEqual(["N", 2]);
    expect(shapeOf(m.graph, "w")).toEqual([3, 4]);
    expect(dtypeOf(m.graph, "w")).toBe("float32");
    expect(shapeOf(m.graph, "nope")).toBeUndefined();
  });
});

describe("mismatches raise OnnxError naming node, op and shapes", () => {
  const cases: [string, () => Model, RegExp][] = [
    [
      "Conv channels",
      () => single("Conv", [x([1, 3, 28, 28]), cf("w", [8, 1, 5, 5])], {}, { name: "conv1" }),
      /node 'conv1': Conv: input has 3 channels but weight \[8,1,5,5\] with group=1 needs 1 .*input \[1,3,28,28\]/,
    ],
    [
      "Conv bias",
      () => single("Conv", [x([1, 1, 8, 8]), cf("w", [8, 1, 3, 3]), cf("b", [4])]),
      /Conv: bias \[4\] does not match weight \[8,1,3,3\]/,
    ],
    [
      "Conv window larger than input",
      () => single("Conv", [x([1, 1, 2, 8]), cf("w", [8, 1, 3, 3])]),
      /Conv: input \[1,1,2,8\] is smaller than the window/,
    ],
    [
      "MatMul inner dims",
      () => single("MatMul", [x([2, 3]), cf("b", [4, 5])], {}, { name: "mm" }),
      /node 'mm': MatMul: inner dims differ: 3 vs 4 \(A \[2,3\], B \[4,5\]\)/,
    ],
    [
      "MatMul batch dims",
      () => single("MatMul", [x([2, 3, 4]), cf("b", [5, 4, 6])]),
      /MatMul: batch dims do not broadcast \(A \[2,3,4\], B \[5,4,6\]\)/,
    ],
    [
      "Gemm inner dims",
      () => single("Gemm", [x([2, 3]), cf("b", [5, 4])], { transB: 1 }),
      /Gemm: inner dims differ: 3 vs 4 \(A \[2,3\], B \[5,4\]/,
    ],
    [
      "broadcast 3 vs 4",
      () => single("Add", [x([2, 3]), x([4], "z")], {}, { name: "add" }),
      /node 'add': Add: inputs \[2,3\] and \[4\] do not broadcast/,
    ],
    [
      "Reshape element count",
      () => single("Reshape", [x([2, 3]), c64("s", [4, 2])], {}, { name: "r" }),
      /node 'r': Reshape: cannot reshape input \[2,3\] \(6 elements\) to \[4,2\] \(8 elements\)/,
    ],
    [
      "Reshape -1 not divisible",
      () => single("Reshape", [x([2, 3]), c64("s", [4, -1])]),
      /Reshape: cannot reshape input \[2,3\] \(6 elements\) to \[4,-1\]: not divisible/,
    ],
    ["Reshape two -1", () => single("Reshape", [x([2, 3]), c64("s", [-1, -1])]), /more than one -1/],
    [
      "Concat dims",
      () => single("Concat", [x([2, 3]), x([4, 3], "z")], { axis: 1 }),
      /Concat: inputs \[2,3\], \[4,3\] differ on dim 0/,
    ],
    [
      "Split sizes",
      () => single("Split", [x([7, 2]), c64("s", [2, 4])], {}, { outputs: 2 }),
      /Split: split \[2,4\] sums to 6, dim 0 of input \[7,2\] is 7/,
    ],
    [
      "Squeeze non-1",
      () => single("Squeeze", [x([2, 3]), c64("a", [1])]),
      /Squeeze: axis 1 of input \[2,3\] is 3, not 1/,
    ],
    [
      "Transpose perm",
      () => single("Transpose", [x([2, 3])], { perm: [0, 0] }),
      /Transpose: perm \[0,0\] is not a permutation/,
    ],
    [
      "BatchNorm channels",
      () =>
        single("BatchNormalization", [x([1, 3, 4]), cf("s", [4]), cf("b", [3]), cf("m", [3]), cf("v", [3])]),
      /BatchNormalization: scale \[4\] does not match the 3 channels of input \[1,3,4\]/,
    ],
    [
      "Gather index",
      () => single("Gather", [x([3, 2]), { name: "i", init: i64([1], [3]) }]),
      /Gather: index 3 is out of range for dim 0 \(3\)/,
    ],
    [
      "GatherElements rank",
      () => single("GatherElements", [x([3, 2]), { name: "i", init: i64([3], [0, 1, 0]) }]),
      /GatherElements: data and indices ranks differ \(data \[3,2\], indices \[3\]\)/,
    ],
    [
      "Q per-axis scale",
      () => single("QuantizeLinear", [x([2, 3]), cf("s", [2])]),
      /QuantizeLinear: per-axis scale \[2\] does not match dim 1 \(3\) of input \[2,3\]/,
    ],
    [
      "SCE labels",
      () => single("SoftmaxCrossEntropyLoss", [x([4, 3]), { name: "l", init: i64([3], [0, 1, 2]) }]),
      /SoftmaxCrossEntropyLoss: labels \[3\] do not match scores \[4,3\]/,
    ],
    [
      "Reduce axes",
      () => single("ReduceSum", [x([2, 3]), c64("a", [2])]),
      /ReduceSum: axes \[2\] out of range for input \[2,3\]/,
    ],
    [
      "Softmax axis",
      () => single("Softmax", [x([2, 3])], { axis: 2 }),
      /Softmax: axis 2 is out of range for input \[2,3\]/,
    ],
    [
      "Cast to",
      () => single("Cast", [x([2])], { to: 99 }),
      /Cast: attribute 'to' \(99\) is not a known type/,
    ],
  ];
  for (const [name, make, re] of cases) {
    it(name, () => {
      const e = inferError(make());
      expect(e.message).toMatch(re);
      expect(e.where.node).toBeDefined();
    });
  }

  it("symbolic vs number never fails; two known sizes do", () => {
    expect(inferModelShapes(single("MatMul", [x(["N", "K"]), cf("b", [4, 5])])).get("y0")!.shape).toEqual([
      "N",
      5,
    ]);
  });
});

describe("inferred shapes equal ORT's for every intermediate value of the shared models", () => {
  /** Random feeds for the model's real inputs (not initializers listed as inputs); symbolic dims get BATCH. */
  function modelFeeds(m: Model): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const v of m.graph.inputs) {
      if (m.graph.initializers.has(v.name)) continue;
      const dims = v.shape!.map((d) => (typeof d === "number" ? d : BATCH));
      const n = numel(dims);
      out[v.name] =
        v.dtype === "float16"
          ? tensor("float16", dims, new Uint16Array(n).fill(0x3800))
          : tensor(
              "float32",
              dims,
              Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5 + 0.5),
            );
    }
    return out;
  }

  /** Run a model with every node output exposed as a graph output; dims of each value by name. */
  async function ortShapes(m: Model): Promise<Map<string, number[]>> {
    const have = new Set(m.graph.outputs.map((o) => o.name));
    for (const n of m.graph.nodes) {
      for (const o of n.outputs) {
        if (o && !have.has(o) && !m.graph.initializers.has(o)) {
          m.graph.outputs.push({ name: o });
          have.add(o);
        }
      }
    }
    const out = await runOrt(m, modelFeeds(m));
    return new Map(Object.entries(out).map(([k, v]) => [k, v.dims]));
  }

  const concrete = (shape: Dim[]) => shape.map((d) => (typeof d === "string" ? BATCH : d));

  for (const file of ["mnist-8", "cifar10-imageclassifier", "iris-mlp", "squeezenet1.0-fp16"]) {
    it(file, async () => {
      const m = loadModel(`${MODELS}/${file}.onnx`);
      m.graph.valueInfo.clear(); // infer from scratch, not from the file's value_info
      const known = inferModelShapes(m);
      const ort = await ortShapes(loadModel(`${MODELS}/${file}.onnx`));
      let compared = 0;
      for (const n of m.graph.nodes) {
        for (const o of n.outputs) {
          const inferred = known.get(o)?.shape;
          expect(inferred, `${n.opType} ${o}`).toBeDefined();
          expect(
            inferred!.every((d) => d !== null),
            `${o} fully known`,
          ).toBe(true);
          expect(concrete(inferred!), `${n.opType} ${o}`).toEqual(ort.get(o));
          compared++;
        }
      }
      console.log(`${file}: ${compared} of ${compared} values match ORT (batch ${BATCH} for symbolic dims)`);
      expect(compared).toBe(m.graph.nodes.reduce((k, n) => k + n.outputs.length, 0));
    });
  }

  it("mnist-zoo-2018-opset1 (inferred at opset 1; ORT runs it only once normalised, same value names)", async () => {
    const m = loadModel(`${MODELS}/mnist-zoo-2018-opset1.onnx`);
    m.graph.valueInfo.clear();
    const known = inferModelShapes(m);
    const norm = normalizeOpset(loadModel(`${MODELS}/mnist-zoo-2018-opset1.onnx`), { fold: false });
    const ort = await ortShapes(norm);
    let compared = 0;
    for (const n of m.graph.nodes) {
      for (const o of n.outputs) {
        const inferred = known.get(o)?.shape;
        expect(inferred, o).toBeDefined();
        // Constants hold their own dims (normalisation may reshape them for numpy broadcasting); the rest: ORT
        const ref =
          n.opType === "Constant" && n.attrs.value?.type === "tensor" ? n.attrs.value.value.dims : ort.get(o);
        expect(concrete(inferred!), `${n.opType} ${o}`).toEqual(ref);
        compared++;
      }
    }
    console.log(`mnist-zoo-2018-opset1: ${compared} values match (${compared - 6} against ORT, 6 Constants)`);
    expect(compared).toBe(18);
  });
});
