import { describe, expect, it } from "vitest";
import { toQOperator } from "../../src/export/qoperator.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { tensor, toFloat32 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { seeded } from "../helpers/random.js";

/** x → Q/DQ → Conv (int8 per-channel weights, int32 bias, both behind DQ) → float output: no Q after the conv. */
function floatResultConv(): Graph {
  const r = seeded(4);
  const g = new Graph();
  g.inputs = [{ name: "x", dtype: "float32", shape: ["batch", 2, 5, 5] }];
  g.outputs = [{ name: "y", dtype: "float32", shape: ["batch", 3, 5, 5] }];
  const c = (name: string, t: ReturnType<typeof tensor>) => g.initializers.set(name, t) && name;
  c("xs", tensor("float32", [], [0.05]));
  c("xz", tensor("uint8", [], [17]));
  c(
    "wq",
    tensor(
      "int8",
      [3, 2, 3, 3],
      Array.from({ length: 54 }, () => Math.floor(r() * 255) - 127),
    ),
  );
  c("ws", tensor("float32", [3], [0.01, 0.02, 0.004]));
  c("wz", tensor("int8", [3], [0, 0, 0]));
  c("bq", tensor("int32", [3], [120, -4000, 77]));
  c("bs", tensor("float32", [3], [0.05 * 0.01, 0.05 * 0.02, 0.05 * 0.004].map(Math.fround)));
  c("bz", tensor("int32", [3], [0, 0, 0]));
  const q = g.op("QuantizeLinear", ["x", "xs", "xz"]);
  const dx = g.op("DequantizeLinear", [q, "xs", "xz"]);
  const dw = g.op("DequantizeLinear", ["wq", "ws", "wz"], { axis: 0 });
  const db = g.op("DequantizeLinear", ["bq", "bs", "bz"], { axis: 0 });
  g.op("Conv", [dx, dw, db], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { name: "conv", output: "y" });
  return g;
}

describe("QOperator conversion", () => {
  it("a conv with a float result becomes ConvInteger + int32 bias + DequantizeLinear, computing the same", async () => {
    const g = floatResultConv();
    const { graph, report } = toQOperator(g);
    expect(report.integerOps).toEqual({ ConvInteger: 1 });
    expect(graph.nodes.map((n) => n.opType)).toEqual([
      "QuantizeLinear",
      "ConvInteger",
      "Add",
      "DequantizeLinear",
    ]);
    const r = seeded(9);
    const x = tensor(
      "float32",
      [2, 2, 5, 5],
      Array.from({ length: 100 }, () => r() * 10 - 2),
    );
    const outs: Float32Array[] = [];
    for (const m of [g, graph]) {
      const s = await openSession(modelOf(m), { threads: 1, optimization: "disabled" });
      outs.push(toFloat32((await run(s, { x })).y!));
      await s.release();
    }
    // the integer sum is exact; the float conv on dequantized values rounds a little
    const [a, b] = outs as [Float32Array, Float32Array];
    for (let i = 0; i < a.length; i++)
      expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(a[i]!)));
  });
});

/** DQ(a), DQ(b) → Concat → AveragePool → Q → DQ: the com.microsoft QLinearConcat and QLinearAveragePool path. */
function concatPool(): Graph {
  const g = new Graph();
  g.inputs = [
    { name: "a", dtype: "float32", shape: ["batch", 2, 4, 4] },
    { name: "b", dtype: "float32", shape: ["batch", 3, 4, 4] },
  ];
  g.outputs = [{ name: "y", dtype: "float32", shape: ["batch", 5, 2, 2] }];
  g.initializers.set("s", tensor("float32", [], [0.1]));
  g.initializers.set("z", tensor("uint8", [], [10]));
  g.initializers.set("s2", tensor("float32", [], [0.07]));
  g.initializers.set("z2", tensor("uint8", [], [3]));
  const da = g.op("DequantizeLinear", [g.op("QuantizeLinear", ["a", "s", "z"]), "s", "z"]);
  const db = g.op("DequantizeLinear", [g.op("QuantizeLinear", ["b", "s", "z"]), "s", "z"]);
  const cat = g.op("Concat", [da, db], { axis: 1 }, { name: "cat" });
  const dc = g.op("DequantizeLinear", [g.op("QuantizeLinear", [cat, "s", "z"]), "s", "z"]);
  const pool = g.op("AveragePool", [dc], { kernel_shape: [2, 2], strides: [2, 2] }, { name: "pool" });
  g.op("DequantizeLinear", [g.op("QuantizeLinear", [pool, "s2", "z2"]), "s2", "z2"], {}, { output: "y" });
  return g;
}

describe("QOperator conversion of Concat and AveragePool", () => {
  it("becomes QLinearConcat and QLinearAveragePool that ORT runs, within one output step of the QDQ form", async () => {
    const g = concatPool();
    const { graph, report } = toQOperator(g);
    expect(report.integerOps).toEqual({ QLinearConcat: 1, QLinearAveragePool: 1 });
    expect(graph.nodes.filter((n) => n.domain === "com.microsoft").map((n) => n.opType)).toEqual([
      "QLinearConcat",
      "QLinearAveragePool",
    ]);
    const r = seeded(3);
    const a = tensor(
      "float32",
      [2, 2, 4, 4],
      Array.from({ length: 64 }, () => r() * 20 - 1),
    );
    const b = tensor(
      "float32",
      [2, 3, 4, 4],
      Array.from({ length: 96 }, () => r() * 20 - 1),
    );
    const outs: Float32Array[] = [];
    for (const m of [g, graph]) {
      const model = modelOf(m, m === graph ? { "": 17, "com.microsoft": 1 } : { "": 17 });
      const s = await openSession(model, { threads: 1, optimization: "disabled" });
      outs.push(toFloat32((await run(s, { a, b })).y!));
      await s.release();
    }
    const [x, y] = outs as [Float32Array, Float32Array];
    for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(0.07 + 1e-6);
  });
});
