import { describe, expect, it } from "vitest";
import { encodeModel } from "../../src/onnx/codec.js";
import { foldConstants } from "../../src/onnx/fold.js";
import { Graph, type Model } from "../../src/onnx/ir.js";
import { f32, i64, tensor } from "../../src/onnx/tensor.js";
import { opsOf } from "./opset-helpers.js";
import { feeds, runOrt } from "./shapes-helpers.js";

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
