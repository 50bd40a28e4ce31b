import { describe, expect, test } from "vitest";
import { appendBackward } from "../../src/autodiff/index.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, i64, tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { expectGradOk } from "./check-helpers.js";

// Rearranging ops, Softmax/LogSoftmax and reductions, checked in float64 against central differences (ε = 1e-6),
// every element plus 3 random directions; tolerance 1e-6 relative to the largest gradient element.
// Resize has no double kernel: float32, ε = 1e-2, directional, tolerance 1e-3.
const TOL64 = 1e-6;
const TOL32 = 1e-3;

describe("rearranging ops", () => {
  const ints = (g: Graph, v: number[]) => g.constant("k", i64([v.length], v));
  const cases: [string, number[], (g: Graph) => string | string[]][] = [
    ["Reshape", [2, 3, 4], (g) => g.op("Reshape", ["x", ints(g, [4, -1])])],
    ["Flatten axis 2", [2, 3, 2, 2], (g) => g.op("Flatten", ["x"], { axis: 2 })],
    ["Transpose", [2, 3, 4], (g) => g.op("Transpose", ["x"], { perm: [2, 0, 1] })],
    ["Transpose default (reverse)", [2, 3, 4], (g) => g.op("Transpose", ["x"])],
    ["Squeeze", [2, 1, 3, 1], (g) => g.op("Squeeze", ["x", ints(g, [1, 3])])],
    ["Unsqueeze", [2, 3], (g) => g.op("Unsqueeze", ["x", ints(g, [0, 3])])],
    [
      "Slice with negative indices",
      [4, 5, 6],
      (g) => g.op("Slice", ["x", ints(g, [1, -4]), ints(g, [-1, 100]), ints(g, [0, 2])]),
    ],
    [
      "Slice step -1 (reversal)",
      [4, 5],
      (g) => g.op("Slice", ["x", ints(g, [3]), ints(g, [0]), ints(g, [1]), ints(g, [-1])]),
    ],
    [
      "Pad constant (positive pads, value 0.5)",
      [2, 3, 4],
      (g) => g.op("Pad", ["x", ints(g, [0, 1, 2, 1, 0, 3]), g.constant("v", f32([], [0.5]))]),
    ],
    ["Pad with negative pads (crop)", [2, 5, 4], (g) => g.op("Pad", ["x", ints(g, [0, -1, 2, 0, 1, -2])])],
    [
      "Split, both outputs",
      [2, 6],
      (g) => g.add("Split", ["x", ints(g, [2, 4])], { axis: 1 }, { outputs: 2 }),
    ],
    [
      "Split, one output used",
      [5, 2],
      (g) => g.add("Split", ["x", ints(g, [3, 2])], { axis: 0 }, { outputs: 2 })[1]!,
    ],
    ["Softmax last axis", [3, 5], (g) => g.op("Softmax", ["x"])],
    ["Softmax axis 1 of 3", [2, 4, 3], (g) => g.op("Softmax", ["x"], { axis: 1 })],
    ["LogSoftmax", [3, 5], (g) => g.op("LogSoftmax", ["x"], { axis: -1 })],
    ["ReduceSum axes input, keepdims 1", [2, 3, 4], (g) => g.op("ReduceSum", ["x", ints(g, [0, 2])])],
    ["ReduceSum all", [2, 3], (g) => g.op("ReduceSum", ["x"], { keepdims: 0 })],
    [
      "ReduceMean axes attribute, keepdims 0",
      [2, 3, 4],
      (g) => g.op("ReduceMean", ["x"], { axes: [1], keepdims: 0 }),
    ],
    ["ReduceMean all", [2, 3, 4], (g) => g.op("ReduceMean", ["x"], { keepdims: 0 })],
    ["Dropout inference (identity)", [3, 4], (g) => g.op("Dropout", ["x"])],
  ];
  for (const [name, dims, build] of cases) {
    test(name, async () => {
      await expectGradOk({ inputs: { x: { dims } }, build, elementwise: 100 }, TOL64);
    });
  }
  test("Concat of three inputs, axis 1", async () => {
    await expectGradOk(
      {
        inputs: { a: { dims: [2, 1, 3] }, b: { dims: [2, 3, 3] }, c: { dims: [2, 2, 3] } },
        build: (g) => g.op("Concat", ["a", "b", "c"], { axis: 1 }),
        elementwise: 100,
      },
      TOL64,
    );
  });
  test("Resize nearest ×2 ×3 (float32)", async () => {
    await expectGradOk(
      {
        inputs: { x: { dims: [2, 2, 3, 2] } },
        build: (g) => g.op("Resize", ["x", "", g.constant("s", f32([4], [1, 1, 2, 3]))], { mode: "nearest" }),
        dtype: "float32",
      },
      TOL32,
    );
  });
  test("Resize nearest by sizes, asymmetric/floor (float32)", async () => {
    await expectGradOk(
      {
        inputs: { x: { dims: [1, 2, 3, 3] } },
        build: (g) =>
          g.op("Resize", ["x", "", "", g.constant("z", i64([4], [1, 2, 12, 6]))], {
            mode: "nearest",
            coordinate_transformation_mode: "asymmetric",
            nearest_mode: "floor",
          }),
        dtype: "float32",
      },
      TOL32,
    );
  });
});

test("Dropout in training mode: dX = dY · mask / (1 − ratio), the mask read from the same run", async () => {
  // the mask is random on every run, so finite differences cannot apply: compare with the definition instead
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: [4, 50] });
  const ratio = g.constant("ratio", f32([], [0.3]));
  const mode = g.constant("mode", tensor("bool", [], [1]));
  const y = g.op("Dropout", ["x", ratio, mode]);
  g.valueInfo.set(y, { name: y, dtype: "float32", shape: [4, 50] });
  const r = g.constant(
    "r",
    f32(
      [4, 50],
      Array.from({ length: 200 }, (_, i) => Math.sin(i)),
    ),
  );
  const weighted = g.op("Mul", [y, r]);
  g.valueInfo.set(weighted, { name: weighted, dtype: "float32", shape: [4, 50] });
  const loss = g.op("ReduceSum", [weighted], { keepdims: 0 });
  const grads = appendBackward(g, loss, ["x"]);
  const mask = g.nodes.find((n) => n.opType === "Dropout")!.outputs[1]!;
  expect(mask).toBeTruthy();
  g.outputs = [{ name: grads.get("x")! }, { name: mask }];
  const s = await openSession(modelOf(g), { threads: 1 });
  const out = await run(s, { x: f32([4, 50], new Float32Array(200).fill(1)) });
  const dx = out[grads.get("x")!]!.data as Float32Array;
  const m = out[mask]!.data as Uint8Array;
  let dropped = 0;
  for (let i = 0; i < 200; i++) {
    const want = m[i] ? Math.fround(Math.sin(i)) / 0.7 : 0;
    expect(Math.abs(dx[i]! - want)).toBeLessThan(1e-6);
    if (!m[i]) dropped++;
  }
  // a test that cannot pass with an all-true mask
  expect(dropped).toBeGreaterThan(20);
});
