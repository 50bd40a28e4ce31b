import { describe, test } from "vitest";
import { f32 } from "../../src/onnx/tensor.js";
import { awayFromZero, expectGradOk, positive } from "./check-helpers.js";

// Elementwise, activation and MatMul/Gemm rules, checked in float64 against central differences (ε = 1e-6):
// every element of every input (elementwise) and 3 random directions per input. Tolerance 1e-6 relative to the
// gradient's largest element (float64 FD error here is ~1e-9). Ops ORT has no double kernel for (HardSigmoid,
// HardSwish, Softplus) run in float32 with ε = 1e-2, directional only, tolerance 1e-3.
const TOL64 = 1e-6;
const TOL32 = 1e-3;
const n = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

describe("broadcasting arithmetic", () => {
  const cases: [string, Record<string, number[]>, string][] = [
    ["Add", { a: [2, 3, 4], b: [3, 1] }, "Add"],
    ["Add leading axes", { a: [4], b: [2, 3, 4] }, "Add"],
    ["Sub", { a: [2, 1, 4], b: [3, 1] }, "Sub"],
    ["Mul", { a: [2, 3, 4], b: [1, 4] }, "Mul"],
    ["Mul scalar", { a: [2, 3], b: [] }, "Mul"],
  ];
  for (const [name, shapes, op] of cases) {
    test(name, async () => {
      const inputs = Object.fromEntries(Object.entries(shapes).map(([k, dims]) => [k, { dims }]));
      await expectGradOk({ inputs, build: (g) => g.op(op, ["a", "b"]), elementwise: 100 }, TOL64);
    });
  }
  test("Div (denominator away from 0, broadcast)", async () => {
    await expectGradOk(
      {
        inputs: { a: { dims: [2, 3, 4] }, b: { dims: [3, 1], data: positive(3) } },
        build: (g) => g.op("Div", ["a", "b"]),
        elementwise: 100,
      },
      TOL64,
    );
  });
  test("Mul of a value with itself", async () => {
    await expectGradOk(
      { inputs: { a: { dims: [3, 4] } }, build: (g) => g.op("Mul", ["a", "a"]), elementwise: 100 },
      TOL64,
    );
  });
  test("Sum of three with broadcasting", async () => {
    await expectGradOk(
      {
        inputs: { a: { dims: [2, 3] }, b: { dims: [3] }, c: { dims: [2, 1] } },
        build: (g) => g.op("Sum", ["a", "b", "c"]),
        elementwise: 100,
      },
      TOL64,
    );
  });
  test("Neg", async () => {
    await expectGradOk(
      { inputs: { a: { dims: [5] } }, build: (g) => g.op("Neg", ["a"]), elementwise: 100 },
      TOL64,
    );
  });
  for (const p of [2, 3, 0.5, -1.5, 1]) {
    test(`Pow with constant exponent ${p}`, async () => {
      await expectGradOk(
        {
          inputs: { a: { dims: [2, 3], data: positive(6) } },
          build: (g) => g.op("Pow", ["a", g.constant("p", f32([], [p]))]),
          elementwise: 100,
        },
        TOL64,
      );
    });
  }
  test("Pow with trained base and exponent", async () => {
    await expectGradOk(
      {
        inputs: { a: { dims: [2, 3], data: positive(6) }, p: { dims: [3], data: [0.5, 1.5, 2.5] } },
        build: (g) => g.op("Pow", ["a", "p"]),
        elementwise: 100,
      },
      TOL64,
    );
  });
});

describe("unary math and activations", () => {
  const unary: [string, ((k: number) => number[]) | undefined, Record<string, number>?][] = [
    ["Exp", undefined],
    ["Log", (k) => positive(k)],
    ["Sqrt", (k) => positive(k)],
    ["Reciprocal", (k) => positive(k)],
    ["Abs", (k) => awayFromZero(k)],
    ["Identity", undefined],
    ["Relu", (k) => awayFromZero(k)],
    ["LeakyRelu", (k) => awayFromZero(k), { alpha: 0.1 }],
    ["Sigmoid", undefined],
    ["Tanh", undefined],
  ];
  for (const [op, data, attrs] of unary) {
    test(op, async () => {
      await expectGradOk(
        {
          inputs: { a: { dims: [3, 5], data: data?.(15) } },
          build: (g) => g.op(op, ["a"], attrs ?? {}),
          elementwise: 100,
        },
        TOL64,
      );
    });
  }
  const f32Only: [string, number[], Record<string, number>?][] = [
    // 3·N(0,1) covers every piece of HardSwish (x < −3, −3 < x < 3, x > 3); kinks avoided by the data
    ["HardSwish", [-4.2, -3.3, -2.5, -1.2, -0.4, 0.3, 1.1, 2.2, 2.8, 3.5, 4.4, -0.9]],
    [
      "HardSigmoid",
      [-4.2, -3.3, -2.2, -1.2, -0.4, 0.3, 1.1, 2.2, 2.8, 3.5, 4.4, -0.9],
      { alpha: 0.25, beta: 0.4 },
    ],
    ["Softplus", [-30, -3.3, -2.2, -1.2, -0.4, 0.3, 1.1, 2.2, 2.8, 3.5, 30, -0.9]],
  ];
  for (const [op, data, attrs] of f32Only) {
    test(`${op} (float32)`, async () => {
      await expectGradOk(
        { inputs: { a: { dims: [12], data } }, build: (g) => g.op(op, ["a"], attrs ?? {}), dtype: "float32" },
        TOL32,
      );
    });
  }
  test("Clip with constant bounds (values away from the bounds)", async () => {
    await expectGradOk(
      {
        inputs: { a: { dims: [12], data: [-2, -1.5, -0.7, -0.45, -0.2, 0.1, 0.35, 0.6, 0.9, 1.4, 2, -3] } },
        build: (g) =>
          g.op("Clip", ["a", g.constant("lo", f32([], [-0.5])), g.constant("hi", f32([], [0.8]))]),
        elementwise: 100,
      },
      TOL64,
    );
  });
  test("Clip with trained bounds (PACT-style)", async () => {
    await expectGradOk(
      {
        inputs: {
          a: { dims: [8], data: [-2, -0.7, -0.2, 0.1, 0.35, 0.9, 1.4, 2] },
          lo: { dims: [], data: [-0.5] },
          hi: { dims: [], data: [0.8] },
        },
        build: (g) => g.op("Clip", ["a", "lo", "hi"]),
        elementwise: 100,
      },
      TOL64,
    );
  });
  test("Clip with only a max", async () => {
    await expectGradOk(
      {
        inputs: { a: { dims: [6], data: [-2, -0.7, 0.35, 0.9, 1.4, 2] } },
        build: (g) => g.op("Clip", ["a", "", g.constant("hi", f32([], [0.8]))]),
        elementwise: 100,
      },
      TOL64,
    );
  });
});

describe("MatMul and Gemm", () => {
  const mm: [string, number[], number[]][] = [
    ["2-D", [3, 4], [4, 5]],
    ["batched", [2, 3, 4], [2, 4, 5]],
    ["batched input, 2-D weight", [2, 3, 4], [4, 5]],
    ["2-D input, batched weight", [3, 4], [2, 4, 5]],
    ["broadcast batch dims", [2, 1, 3, 4], [3, 4, 5]],
    ["vector · matrix", [4], [4, 5]],
    ["batched matrix · vector", [2, 3, 4], [4]],
    ["vector · batched", [4], [2, 4, 5]],
    ["dot", [4], [4]],
  ];
  for (const [name, a, b] of mm) {
    test(`MatMul ${name}`, async () => {
      await expectGradOk(
        {
          inputs: { a: { dims: a }, b: { dims: b } },
          build: (g) => g.op("MatMul", ["a", "b"]),
          elementwise: 200,
        },
        TOL64,
      );
    });
  }
  const gemm: [number, number, number, number, number[]][] = [
    [0, 0, 1, 1, [5]],
    [1, 0, 0.5, 2, [3, 5]],
    [0, 1, 1.5, 0.25, [1, 5]],
    [1, 1, 2, 1, [3, 1]],
  ];
  for (const [tA, tB, alpha, beta, cDims] of gemm) {
    test(`Gemm transA=${tA} transB=${tB} alpha=${alpha} beta=${beta} C[${cDims}]`, async () => {
      await expectGradOk(
        {
          inputs: {
            a: { dims: tA ? [4, 3] : [3, 4] },
            b: { dims: tB ? [5, 4] : [4, 5] },
            c: { dims: cDims },
          },
          build: (g) =>
            g.op("Gemm", ["a", "b", "c"], {
              transA: tA,
              transB: tB,
              alpha: { type: "float", value: alpha },
              beta: { type: "float", value: beta },
            }),
          elementwise: 100,
        },
        TOL64,
      );
    });
  }
  test("Gemm without C", async () => {
    await expectGradOk(
      {
        inputs: { a: { dims: [3, 4] }, b: { dims: [4, 5] } },
        build: (g) => g.op("Gemm", ["a", "b"]),
        elementwise: 100,
      },
      TOL64,
    );
  });
  void n;
});
