import { describe, expect, test } from "vitest";
import { appendBackward, registerGradientRule } from "../../src/autodiff/index.js";
import { convRules } from "../../src/autodiff/rules/conv.js";
import { convGeometry } from "../../src/autodiff/rules/conv-geometry.js";
import { onehotWeightGrad } from "../../src/autodiff/rules/conv-weight-grad.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { distinct, expectGradOk } from "./check-helpers.js";

// Conv, ConvTranspose and pools have only float32 kernels in ORT: checked in float32 with ε = 1e-2 along 3 random
// directions per input (these ops are linear in each input, so central differences are exact up to float32
// rounding); tolerance 1e-3 relative to ‖∇L‖·rms(v) (MaxPool: ε = 1e-4, distinct inputs so no window's maximum
// changes). ORT's MaxPool also has a double kernel: one float64 case (ε = 1e-6, tolerance 1e-6) checks the way
// float64 falls back to. BatchNormalization has double kernels: float64, every element, tolerance 1e-6.
// The new fast ways of Conv and MaxPool are checked with these same tolerances (TOL32), and each case also asserts
// which way the rule took, so a case cannot silently stop exercising the path it names.
const TOL32 = 1e-3;
const TOL64 = 1e-6;
type Attrs = Record<string, number | number[] | string>;

// Which way the Conv rule computes each gradient, read off the backward ops: dX by a forward Conv with the flipped
// kernel ("flip", stride 1) or by ConvTranspose ("transpose"); dW by a one-hot grouped Conv + FusedMatMul
// ("onehot", group 1), by FusedMatMul of dY with x itself ("direct", 1×1 stride 1 unpadded, group 1), or by a Conv
// with the batch as contraction ("conv"); "-" when that gradient is not requested.
type ConvPaths = [dx: "flip" | "transpose" | "-", dw: "onehot" | "direct" | "conv" | "-"];

function expectConvPaths(ops: string[], [dx, dw]: ConvPaths): void {
  if (dx !== "-") expect(ops.includes("ConvTranspose"), `dX by ${dx}`).toBe(dx === "transpose");
  else expect(ops).not.toContain("ConvTranspose");
  expect(ops, "no im2col by Slices and Gemm").not.toContain("Gemm");
  // Convs beyond dX's own flipped-kernel Conv belong to dW
  const dwConvs = ops.filter((o) => o === "Conv").length - (dx === "flip" ? 1 : 0);
  const fused = ops.includes("FusedMatMul");
  if (dw === "onehot") expect([dwConvs, fused], "dW by onehot").toEqual([1, true]);
  else if (dw === "direct")
    expect([dwConvs, fused, ops.includes("Concat")], "dW by direct").toEqual([0, true, false]);
  else if (dw === "conv") expect([dwConvs, fused], "dW by conv").toEqual([1, false]);
  else expect([dwConvs, fused], "no dW").toEqual([0, false]);
}

describe("Conv", () => {
  // [name, x dims, w dims, attributes, bias, expected paths, which inputs are checked (default all)]
  const cases: [string, number[], number[], Attrs, boolean, ConvPaths, ("x" | "w")[]?][] = [
    ["3×3 pad 1", [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, true, ["flip", "onehot"]],
    [
      "stride 2 on an odd size (output_padding needed)",
      [2, 2, 7, 7],
      [3, 2, 3, 3],
      { strides: [2, 2], pads: [1, 1, 1, 1] },
      true,
      ["transpose", "onehot"],
    ],
    [
      "stride 2, no pad, size not covered exactly",
      [1, 2, 8, 9],
      [3, 2, 3, 3],
      { strides: [2, 2] },
      false,
      ["transpose", "onehot"],
    ],
    [
      "dilation 2, stride 2, asymmetric pads",
      [2, 2, 9, 8],
      [2, 2, 3, 2],
      { dilations: [2, 2], strides: [2, 1], pads: [2, 0, 1, 1] },
      true,
      ["transpose", "onehot"],
    ],
    ["groups 2", [2, 4, 5, 5], [6, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1] }, true, ["flip", "conv"]],
    [
      "depthwise, multiplier 2, stride 2",
      [2, 3, 7, 7],
      [6, 1, 3, 3],
      { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] },
      true,
      ["transpose", "conv"],
    ],
    [
      "depthwise, stride 1",
      [2, 3, 6, 6],
      [3, 1, 3, 3],
      { group: 3, pads: [1, 1, 1, 1] },
      true,
      ["flip", "conv"],
    ],
    [
      "depthwise, multiplier 2, stride 1, dilation 2, asymmetric pads",
      [2, 2, 7, 6],
      [4, 1, 3, 2],
      { group: 2, dilations: [2, 1], pads: [2, 1, 1, 0] },
      false,
      ["flip", "conv"],
    ],
    ["1×1 stride 2", [2, 3, 5, 5], [4, 3, 1, 1], { strides: [2, 2] }, true, ["transpose", "onehot"]],
    [
      "auto_pad SAME_UPPER stride 2",
      [1, 2, 7, 6],
      [2, 2, 3, 3],
      { auto_pad: "SAME_UPPER", strides: [2, 2] },
      false,
      ["transpose", "onehot"],
    ],
    [
      "auto_pad SAME_LOWER",
      [1, 2, 5, 5],
      [2, 2, 2, 2],
      { auto_pad: "SAME_LOWER" },
      false,
      ["flip", "onehot"],
    ],
    ["1-D", [2, 3, 11], [4, 3, 3], { strides: [2], pads: [1, 0] }, true, ["transpose", "onehot"]],
    ["1×1", [2, 5, 4, 4], [3, 5, 1, 1], {}, true, ["flip", "direct"]],
    // fast paths specifically
    [
      "stride 1, 3×2 kernel, asymmetric pads",
      [2, 3, 6, 5],
      [4, 3, 3, 2],
      { pads: [2, 0, 1, 1] },
      true,
      ["flip", "onehot"],
    ],
    ["stride 1, no padding", [2, 2, 6, 7], [3, 2, 3, 3], {}, false, ["flip", "onehot"]],
    [
      "stride 1, dilation (2, 3)",
      [2, 2, 8, 9],
      [3, 2, 3, 2],
      { dilations: [2, 3], pads: [2, 1, 3, 2] },
      true,
      ["flip", "onehot"],
    ],
    [
      "stride 1, 1×1 with pads",
      [2, 3, 4, 5],
      [2, 3, 1, 1],
      { pads: [1, 0, 0, 2] },
      false,
      ["transpose", "onehot"],
    ],
    [
      "stride 1, pads wider than the kernel (dX falls back)",
      [1, 2, 5, 5],
      [2, 2, 2, 2],
      { pads: [2, 2, 2, 2] },
      true,
      ["transpose", "onehot"],
    ],
    ["stride 1, 1-D", [2, 3, 11], [4, 3, 3], { pads: [1, 2] }, true, ["flip", "onehot"]],
    [
      "stride 1, 3-D",
      [1, 2, 4, 5, 4],
      [2, 2, 2, 3, 2],
      { pads: [1, 1, 0, 0, 1, 1] },
      false,
      ["flip", "onehot"],
    ],
    ["1×1, dW only", [2, 4, 3, 5], [6, 4, 1, 1], {}, false, ["-", "direct"], ["w"]],
    ["1×1, 1-D", [2, 3, 7], [2, 3, 1], {}, true, ["flip", "direct"]],
    ["3×3 pad 1, dX only", [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, false, ["flip", "-"], ["x"]],
    ["3×3 pad 1, dW only", [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, false, ["-", "onehot"], ["w"]],
  ];
  for (const [name, xd, wd, attrs, bias, paths, checked] of cases) {
    test(name, async () => {
      const wrt = (k: "x" | "w") => !checked || checked.includes(k);
      const inputs: Record<string, { dims: number[]; wrt?: boolean }> = {
        x: { dims: xd, wrt: wrt("x") },
        w: { dims: wd, wrt: wrt("w") },
      };
      if (bias) inputs.b = { dims: [wd[0]!] };
      const r = await expectGradOk(
        {
          inputs,
          build: (g) => g.op("Conv", bias ? ["x", "w", "b"] : ["x", "w"], attrs),
          dtype: "float32",
        },
        TOL32,
      );
      expectConvPaths(r.backwardOps, paths);
    });
  }
});

test("Conv: dW falls back to the batch-contraction Conv when the window matrix would be too large", () => {
  // 64·3·3 × 4096·32·32 ≈ 2.4e9 elements > IM2COL_MAX_ELEMENTS (2^26); only the emitted ops are inspected
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: [4096, 64, 32, 32] });
  g.inputs.push({ name: "w", dtype: "float32", shape: [64, 64, 3, 3] });
  const y = g.op("Conv", ["x", "w"], { pads: [1, 1, 1, 1] });
  const loss = g.op("ReduceSum", [y], { keepdims: 0 });
  const before = g.nodes.length;
  appendBackward(g, loss, ["x", "w"]);
  expectConvPaths(
    g.nodes.slice(before).map((n) => n.opType),
    ["flip", "conv"],
  );
});

// The one-hot dW also handles grouped and depthwise Convs (bench/engine/ops.ts times it there against the
// batch-contraction Conv the rule keeps for them): checked through a Conv rule that computes dW by it alone.
describe("Conv: one-hot dW of grouped Convs", () => {
  const cases: [string, number[], number[], Attrs][] = [
    ["groups 2", [2, 4, 5, 5], [6, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1] }],
    ["depthwise, stride 2", [2, 3, 7, 7], [3, 1, 3, 3], { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] }],
    [
      "depthwise, multiplier 2, dilation 2",
      [2, 2, 7, 6],
      [4, 1, 3, 2],
      { group: 2, dilations: [2, 1], pads: [2, 1, 1, 0] },
    ],
  ];
  for (const [name, xd, wd, attrs] of cases) {
    test(name, async () => {
      registerGradientRule(
        "Conv",
        (c) => {
          const ws = c.needShape(c.x(1));
          const geo = convGeometry(c, c.x(0), c.y(), ws.slice(2));
          return [undefined, onehotWeightGrad(c, c.x(0), c.dy()!, geo, c.int("group", 1), ws), undefined];
        },
        { replace: true },
      );
      try {
        const r = await expectGradOk(
          {
            inputs: { x: { dims: xd, wrt: false }, w: { dims: wd } },
            build: (g) => g.op("Conv", ["x", "w"], attrs),
            dtype: "float32",
          },
          TOL32,
        );
        expect(r.backwardOps.filter((o) => o === "Conv").length).toBe(1);
      } finally {
        registerGradientRule("Conv", convRules.Conv!, { replace: true });
      }
    });
  }
});

describe("ConvTranspose", () => {
  const cases: [string, number[], number[], Attrs][] = [
    [
      "stride 2, pads 1, output_padding 1",
      [2, 3, 4, 4],
      [3, 2, 3, 3],
      { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] },
    ],
    ["groups 2, dilation 2", [1, 4, 5, 5], [4, 3, 3, 3], { group: 2, dilations: [2, 2], pads: [1, 0, 0, 1] }],
    ["no padding", [2, 2, 3, 4], [2, 3, 2, 2], {}],
  ];
  for (const [name, xd, wd, attrs] of cases) {
    test(name, async () => {
      await expectGradOk(
        {
          inputs: {
            x: { dims: xd },
            w: { dims: wd },
            b: { dims: [wd[1]! * ((attrs.group as number) ?? 1)] },
          },
          build: (g) => g.op("ConvTranspose", ["x", "w", "b"], attrs),
          dtype: "float32",
        },
        TOL32,
      );
    });
  }
});

describe("pools", () => {
  // distinct values: no ties between window maxima. "tiled": non-overlapping 2-D float32 windows take the
  // mask + upsampling way (no ScatterElements); "scatter": the Indices + ScatterElements way.
  const maxCases: [string, number[], Attrs, "tiled" | "scatter", ("float32" | "float64")?][] = [
    ["MaxPool 2×2 stride 2", [2, 3, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] }, "tiled"],
    [
      "MaxPool 3×3 stride 2 pad 1 (overlapping)",
      [2, 2, 7, 7],
      { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
      "scatter",
    ],
    ["MaxPool ceil_mode", [1, 2, 7, 6], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }, "scatter"],
    ["MaxPool dilation 2", [1, 2, 7, 7], { kernel_shape: [2, 2], dilations: [2, 2] }, "scatter"],
    // the tiled way specifically, and where it falls back
    ["MaxPool 3×2 kernel = strides", [2, 2, 6, 8], { kernel_shape: [3, 2], strides: [3, 2] }, "tiled"],
    [
      "MaxPool 3×2 kernel = strides, floor-mode tail cropped",
      [2, 2, 8, 7],
      { kernel_shape: [3, 2], strides: [3, 2] },
      "tiled",
    ],
    [
      "MaxPool ceil_mode on divisible sizes",
      [1, 2, 6, 4],
      { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 },
      "tiled",
    ],
    [
      "MaxPool auto_pad SAME_UPPER, kernel = strides, divisible",
      [1, 2, 6, 4],
      { kernel_shape: [2, 2], strides: [2, 2], auto_pad: "SAME_UPPER" },
      "tiled",
    ],
    [
      "MaxPool kernel = strides with pads",
      [1, 2, 6, 6],
      { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1] },
      "scatter",
    ],
    ["MaxPool 1-D", [2, 3, 8], { kernel_shape: [2], strides: [2] }, "scatter"],
    [
      "MaxPool 2×2 stride 2, float64",
      [1, 2, 4, 4],
      { kernel_shape: [2, 2], strides: [2, 2] },
      "scatter",
      "float64",
    ],
  ];
  for (const [name, xd, attrs, way, dtype] of maxCases) {
    test(name, async () => {
      const count = xd.reduce((a, b) => a * b, 1);
      const r = await expectGradOk(
        {
          inputs: { x: { dims: xd, data: distinct(count) } },
          build: (g) => g.op("MaxPool", ["x"], attrs),
          dtype: dtype ?? "float32",
          eps: dtype === "float64" ? 1e-6 : 1e-4,
        },
        dtype === "float64" ? TOL64 : TOL32,
      );
      expect(r.backwardOps.includes("ScatterElements"), way).toBe(way === "scatter");
    });
  }
  test("MaxPool with a symbolic batch takes the tiled way; unknown spatial sizes fall back", () => {
    // only the emitted ops are inspected (the training graphs have a symbolic batch)
    for (const [shape, way] of [
      [["N", 2, 6, 6], "tiled"],
      [["N", 2, "H", "W"], "scatter"],
    ] as const) {
      const g = new Graph();
      g.inputs.push({ name: "x", dtype: "float32", shape: [...shape] });
      const y = g.op("MaxPool", ["x"], { kernel_shape: [2, 2], strides: [2, 2] });
      const loss = g.op("ReduceSum", [y], { keepdims: 0 });
      const before = g.nodes.length;
      appendBackward(g, loss, ["x"]);
      const ops = g.nodes.slice(before).map((n) => n.opType);
      expect(ops.includes("ScatterElements"), way).toBe(way === "scatter");
    }
  });
  // Ties are not differentiable; the rule gives each window's dY to its first maximum in row-major order, as
  // PyTorch does. Exact expected gradients (a window of equal negatives, a 2-way and a 3-way tie, no tie; the last
  // column is a floor-mode tail), for the tiled way (float32) and the scatter way (float64 falls back to it).
  const tieX = [
    [-1, -1, 0, 2, 9],
    [-1, -1, 2, 0, 9],
    [5, 3, 0, 0, 9],
    [5, 5, 0, 7, 9],
  ];
  const tieDy = [
    [1, 2],
    [3, 4],
  ];
  const tieDx = [
    [1, 0, 0, 2, 0],
    [0, 0, 0, 0, 0],
    [3, 0, 0, 0, 0],
    [0, 0, 0, 4, 0],
  ];
  for (const [dtype, way] of [
    ["float32", "tiled"],
    ["float64", "scatter"],
  ] as const) {
    test(`MaxPool ties: the first maximum of each window takes dY (${way})`, async () => {
      const g = new Graph();
      g.inputs.push({ name: "x", dtype, shape: [1, 1, 4, 5] });
      const y = g.op("MaxPool", ["x"], { kernel_shape: [2, 2], strides: [2, 2] });
      const r = g.constant("r", tensor(dtype, [1, 1, 2, 2], tieDy.flat()));
      const loss = g.op("ReduceSum", [g.op("Mul", [y, r])], { keepdims: 0 });
      const before = g.nodes.length;
      const dx = appendBackward(g, loss, ["x"]).get("x")!;
      const ops = g.nodes.slice(before).map((n) => n.opType);
      expect(ops.includes("ScatterElements")).toBe(way === "scatter");
      g.outputs = [{ name: dx }];
      const out = await run(await openSession(modelOf(g), { threads: 1 }), {
        x: tensor(dtype, [1, 1, 4, 5], tieX.flat()),
      });
      expect(Array.from(out[dx]!.data as Float32Array)).toEqual(tieDx.flat());
    });
  }
  const avgCases: [string, number[], Attrs][] = [
    ["AveragePool 2×2 stride 2", [2, 3, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] }],
    [
      "AveragePool 3×3 stride 2 pad 1, count_include_pad 0",
      [2, 2, 7, 7],
      { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    ],
    [
      "AveragePool 3×3 stride 2 pad 1, count_include_pad 1",
      [2, 2, 7, 7],
      { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 },
    ],
    ["AveragePool asymmetric pads, stride 1", [1, 2, 5, 6], { kernel_shape: [3, 2], pads: [0, 1, 2, 0] }],
    ["AveragePool ceil_mode", [1, 2, 7, 6], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }],
    [
      "AveragePool ceil_mode with pads, count_include_pad 1",
      [1, 2, 6, 6],
      { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 },
    ],
    ["AveragePool floor mode leaves a tail", [1, 1, 8, 7], { kernel_shape: [3, 3], strides: [3, 3] }],
  ];
  for (const [name, xd, attrs] of avgCases) {
    test(name, async () => {
      await expectGradOk(
        { inputs: { x: { dims: xd } }, build: (g) => g.op("AveragePool", ["x"], attrs), dtype: "float32" },
        TOL32,
      );
    });
  }
  test("GlobalAveragePool", async () => {
    await expectGradOk(
      {
        inputs: { x: { dims: [2, 3, 4, 5] } },
        build: (g) => g.op("GlobalAveragePool", ["x"]),
        dtype: "float32",
      },
      TOL32,
    );
  });
});

describe("BatchNormalization", () => {
  test("training mode: x, scale and bias (float64, every element)", async () => {
    await expectGradOk(
      {
        inputs: { x: { dims: [3, 2, 3, 2] }, s: { dims: [2] }, b: { dims: [2] } },
        build: (g) => {
          const [y] = g.add(
            "BatchNormalization",
            ["x", "s", "b", g.constant("m", f32([2], [0.1, -0.2])), g.constant("v", f32([2], [1.5, 0.7]))],
            {
              training_mode: 1,
              epsilon: { type: "float", value: 1e-3 },
            },
            { outputs: 3 },
          );
          return y!;
        },
        elementwise: 100,
      },
      TOL64,
    );
  });
  test("training mode on [N, C] (BatchNorm1d)", async () => {
    await expectGradOk(
      {
        inputs: { x: { dims: [5, 3] }, s: { dims: [3] }, b: { dims: [3] } },
        build: (g) =>
          g.add(
            "BatchNormalization",
            ["x", "s", "b", g.constant("m", f32([3], [0, 0, 0])), g.constant("v", f32([3], [1, 1, 1]))],
            { training_mode: 1 },
            { outputs: 3 },
          )[0]!,
        elementwise: 100,
      },
      TOL64,
    );
  });
  test("inference mode", async () => {
    await expectGradOk(
      {
        inputs: { x: { dims: [2, 2, 3, 3] }, s: { dims: [2] }, b: { dims: [2] } },
        build: (g) =>
          g.op("BatchNormalization", [
            "x",
            "s",
            "b",
            g.constant("m", f32([2], [0.1, -0.2])),
            g.constant("v", f32([2], [1.5, 0.7])),
          ]),
        elementwise: 100,
      },
      TOL64,
    );
  });
});
