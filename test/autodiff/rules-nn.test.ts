import { describe, test } from "vitest";
import { f32 } from "../../src/onnx/tensor.js";
import { distinct, expectGradOk } from "./check-helpers.js";

// Conv, ConvTranspose and pools have only float32 kernels in ORT: checked in float32 with ε = 1e-2 along 3 random
// directions per input (these ops are linear in each input, so central differences are exact up to float32
// rounding); tolerance 1e-3 relative to ‖∇L‖·rms(v). BatchNormalization has double kernels: float64, every
// element, tolerance 1e-6.
const TOL32 = 1e-3;
const TOL64 = 1e-6;
type Attrs = Record<string, number | number[] | string>;

describe("Conv", () => {
  const cases: [string, number[], number[], Attrs, boolean][] = [
    ["3×3 pad 1", [2, 3, 6, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, true],
    [
      "stride 2 on an odd size (output_padding needed)",
      [2, 2, 7, 7],
      [3, 2, 3, 3],
      { strides: [2, 2], pads: [1, 1, 1, 1] },
      true,
    ],
    ["stride 2, no pad, size not covered exactly", [1, 2, 8, 9], [3, 2, 3, 3], { strides: [2, 2] }, false],
    [
      "dilation 2, stride 2, asymmetric pads",
      [2, 2, 9, 8],
      [2, 2, 3, 2],
      { dilations: [2, 2], strides: [2, 1], pads: [2, 0, 1, 1] },
      true,
    ],
    ["groups 2", [2, 4, 5, 5], [6, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1] }, true],
    [
      "depthwise, multiplier 2, stride 2",
      [2, 3, 7, 7],
      [6, 1, 3, 3],
      { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] },
      true,
    ],
    [
      "auto_pad SAME_UPPER stride 2",
      [1, 2, 7, 6],
      [2, 2, 3, 3],
      { auto_pad: "SAME_UPPER", strides: [2, 2] },
      false,
    ],
    ["auto_pad SAME_LOWER", [1, 2, 5, 5], [2, 2, 2, 2], { auto_pad: "SAME_LOWER" }, false],
    ["1-D", [2, 3, 11], [4, 3, 3], { strides: [2], pads: [1, 0] }, true],
    ["1×1", [2, 5, 4, 4], [3, 5, 1, 1], {}, true],
  ];
  for (const [name, xd, wd, attrs, bias] of cases) {
    test(name, async () => {
      const inputs: Record<string, { dims: number[] }> = { x: { dims: xd }, w: { dims: wd } };
      if (bias) inputs.b = { dims: [wd[0]!] };
      await expectGradOk(
        {
          inputs,
          build: (g) => g.op("Conv", bias ? ["x", "w", "b"] : ["x", "w"], attrs),
          dtype: "float32",
        },
        TOL32,
      );
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
  // distinct values: no ties between window maxima
  const maxCases: [string, number[], Attrs][] = [
    ["MaxPool 2×2 stride 2", [2, 3, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] }],
    [
      "MaxPool 3×3 stride 2 pad 1 (overlapping)",
      [2, 2, 7, 7],
      { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] },
    ],
    ["MaxPool ceil_mode", [1, 2, 7, 6], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }],
    ["MaxPool dilation 2", [1, 2, 7, 7], { kernel_shape: [2, 2], dilations: [2, 2] }],
  ];
  for (const [name, xd, attrs] of maxCases) {
    test(name, async () => {
      const count = xd.reduce((a, b) => a * b, 1);
      await expectGradOk(
        {
          inputs: { x: { dims: xd, data: distinct(count) } },
          build: (g) => g.op("MaxPool", ["x"], attrs),
          dtype: "float32",
          eps: 1e-4,
        },
        TOL32,
      );
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
