import { describe, it } from "vitest";
import type { Model } from "../../src/onnx/ir.js";
import { i64, tensor } from "../../src/onnx/tensor.js";
import { agreesWithOrt, c64, cf, x } from "./shapes-fixtures.js";
import { single } from "./shapes-helpers.js";

describe("shape rules agree with ORT (one node per case)", () => {
  const cases: [string, () => Model][] = [
    [
      "Conv pads+stride+dilation",
      () =>
        single("Conv", [x([2, 3, 17, 15]), cf("w", [4, 3, 3, 2])], {
          pads: [1, 0, 2, 1],
          strides: [2, 3],
          dilations: [2, 1],
        }),
    ],
    [
      "Conv SAME_UPPER stride 2",
      () =>
        single("Conv", [x([1, 2, 9, 10]), cf("w", [6, 2, 3, 3]), cf("b", [6])], {
          auto_pad: "SAME_UPPER",
          strides: [2, 2],
        }),
    ],
    [
      "Conv VALID group 2",
      () => single("Conv", [x([1, 4, 9, 10]), cf("w", [6, 2, 3, 3])], { auto_pad: "VALID", group: 2 }),
    ],
    ["Conv 1-D", () => single("Conv", [x([2, 3, 11]), cf("w", [5, 3, 4])], { pads: [1, 2] })],
    [
      "ConvTranspose stride 2 + output_padding",
      () =>
        single("ConvTranspose", [x([1, 4, 5, 6]), cf("w", [4, 3, 3, 3])], {
          strides: [2, 2],
          pads: [1, 1, 1, 1],
          output_padding: [1, 0],
        }),
    ],
    [
      "ConvTranspose group 2 SAME_UPPER",
      () =>
        single("ConvTranspose", [x([1, 4, 5, 6]), cf("w", [4, 2, 2, 2])], {
          strides: [2, 2],
          auto_pad: "SAME_UPPER",
          group: 2,
        }),
    ],
    [
      "ConvTranspose output_shape",
      () =>
        single("ConvTranspose", [x([1, 2, 5, 5]), cf("w", [2, 3, 3, 3])], {
          strides: [2, 2],
          output_shape: [10, 11],
        }),
    ],
    [
      "MaxPool ceil_mode + Indices",
      () =>
        single(
          "MaxPool",
          [x([1, 2, 10, 7])],
          { kernel_shape: [3, 2], strides: [2, 2], ceil_mode: 1 },
          { outputs: 2 },
        ),
    ],
    [
      "MaxPool ceil_mode, window in the padding dropped",
      () =>
        single("MaxPool", [x([1, 1, 5, 5])], {
          kernel_shape: [2, 2],
          strides: [2, 2],
          pads: [1, 1, 1, 1],
          ceil_mode: 1,
        }),
    ],
    [
      "AveragePool pads",
      () =>
        single("AveragePool", [x([2, 3, 8, 8])], {
          kernel_shape: [3, 3],
          pads: [1, 1, 1, 1],
          strides: [2, 2],
        }),
    ],
    [
      "AveragePool SAME_LOWER",
      () =>
        single("AveragePool", [x([1, 3, 7, 8])], {
          kernel_shape: [2, 3],
          strides: [2, 2],
          auto_pad: "SAME_LOWER",
        }),
    ],
    ["GlobalAveragePool", () => single("GlobalAveragePool", [x(["N", 5, 4, 3])])],
    ["GlobalMaxPool", () => single("GlobalMaxPool", [x([2, 5, 4])])],
    [
      "Gemm transA transB + C",
      () => single("Gemm", [x([5, 3]), cf("b", [4, 5]), cf("c", [4])], { transA: 1, transB: 1 }),
    ],
    ["MatMul batched broadcast", () => single("MatMul", [x([2, 1, 3, 4]), cf("b", [5, 4, 6])])],
    ["MatMul 1-D × 2-D", () => single("MatMul", [x([4]), cf("b", [4, 6])])],
    ["MatMul 3-D × 1-D", () => single("MatMul", [x([2, 3, 4]), cf("b", [4])])],
    [
      "BatchNormalization training_mode",
      () =>
        single(
          "BatchNormalization",
          [x([2, 3, 4, 4]), cf("s", [3]), cf("b", [3]), cf("m", [3]), cf("v", [3], [1, 2, 3])],
          { training_mode: 1 },
          { outputs: 3 },
        ),
    ],
    [
      "BatchNormalization inference",
      () =>
        single("BatchNormalization", [
          x(["N", 3, 5]),
          cf("s", [3]),
          cf("b", [3]),
          cf("m", [3]),
          cf("v", [3], [1, 2, 3]),
        ]),
    ],
    ["Add broadcast", () => single("Add", [x([2, 1, 4]), x([3, 1], "z")])],
    [
      "Where",
      () => single("Where", [{ name: "c", dtype: "bool", shape: [3, 1] }, x([1, 4]), x([2, 1, 1], "z")]),
    ],
    ["Greater → bool", () => single("Greater", [x([2, 3]), x([3], "z")])],
    ["Max variadic", () => single("Max", [x([2, 3]), x([3], "z"), x([4, 1, 1], "w")])],
    ["Pow", () => single("Pow", [x([2, 3]), cf("e", [1], [2])])],
    ["Dropout with mask", () => single("Dropout", [x([2, 3])], {}, { outputs: 2 })],
    ["Cast to int64", () => single("Cast", [x([2, 3])], { to: 7 })],
    ["Clip", () => single("Clip", [x([2, 3]), cf("lo", [], [-0.1]), cf("hi", [], [0.2])])],
    ["HardSwish", () => single("HardSwish", [x([4, 5])])],
    ["Reshape 0 and -1", () => single("Reshape", [x([2, 3, 4, 5]), c64("s", [0, -1, 5])])],
    ["Reshape allowzero", () => single("Reshape", [x([2, 0, 4]), c64("s", [0, 8])], { allowzero: 1 })],
    ["Flatten axis 2", () => single("Flatten", [x([2, 3, 4, 5])], { axis: 2 })],
    ["Flatten axis 0", () => single("Flatten", [x([2, 3, 4])], { axis: 0 })],
    ["Transpose perm", () => single("Transpose", [x([2, 3, 4])], { perm: [1, 2, 0] })],
    ["Transpose default", () => single("Transpose", [x([2, 3, 4])])],
    ["Concat axis -1", () => single("Concat", [x([2, 3, 4]), x([2, 3, 1], "z")], { axis: -1 })],
    ["Split attr-free equal parts", () => single("Split", [x([2, 6])], { axis: 1 }, { outputs: 3 })],
    ["Split sizes input", () => single("Split", [x([7, 2]), c64("s", [2, 5])], {}, { outputs: 2 })],
    [
      "Split num_outputs (opset 18)",
      () => single("Split", [x([7, 2])], { num_outputs: 3 }, { outputs: 3, opset: 18 }),
    ],
    [
      "Slice negative step and clamping",
      () =>
        single("Slice", [
          x([10, 6, 5]),
          c64("st", [-1, 1, 100]),
          c64("en", [-100, 5, 200]),
          c64("ax", [0, 1, 2]),
          c64("sp", [-2, 3, 1]),
        ]),
    ],
    [
      "Slice axes subset",
      () => single("Slice", [x([10, 6]), c64("st", [2]), c64("en", [-1]), c64("ax", [-1])]),
    ],
    ["Squeeze axes", () => single("Squeeze", [x([1, 3, 1, 2]), c64("a", [0, -2])])],
    ["Squeeze all", () => single("Squeeze", [x([1, 3, 1, 2])])],
    ["Unsqueeze", () => single("Unsqueeze", [x([3, 4]), c64("a", [0, -1, 2])])],
    ["Pad", () => single("Pad", [x([2, 3]), c64("p", [1, 0, 2, 3])])],
    [
      "Pad axes (opset 18)",
      () => single("Pad", [x([2, 3, 4]), c64("p", [1, 2, 3, 4]), "", c64("ax", [0, 2])], {}, { opset: 18 }),
    ],
    [
      "Resize scales",
      () => single("Resize", [x([1, 2, 5, 7]), "", cf("sc", [4], [1, 1, 2, 1.5])], { mode: "nearest" }),
    ],
    [
      "Resize sizes",
      () => single("Resize", [x([1, 2, 5, 7]), "", "", c64("sz", [1, 2, 3, 9])], { mode: "linear" }),
    ],
    [
      "Resize sizes not_larger (opset 18)",
      () =>
        single(
          "Resize",
          [x([1, 2, 4, 8]), "", "", c64("sz", [6, 6])],
          { axes: [2, 3], keep_aspect_ratio_policy: "not_larger" },
          { opset: 18 },
        ),
    ],
    [
      "Upsample (opset 9)",
      () => single("Upsample", [x([1, 2, 3, 4]), cf("sc", [4], [1, 1, 2, 3])], {}, { opset: 9 }),
    ],
    ["Softmax", () => single("Softmax", [x([2, 3, 4])], { axis: 1 })],
    ["LogSoftmax", () => single("LogSoftmax", [x([2, 3])])],
    [
      "ReduceSum axes input keepdims 0",
      () => single("ReduceSum", [x([2, 3, 4]), c64("a", [1])], { keepdims: 0 }),
    ],
    [
      "ReduceSum noop_with_empty_axes",
      () => single("ReduceSum", [x([2, 3, 4])], { noop_with_empty_axes: 1 }),
    ],
    ["ReduceMean attr axes", () => single("ReduceMean", [x([2, 3, 4])], { axes: [0, -1] })],
    ["ReduceMax all", () => single("ReduceMax", [x([2, 3, 4])], { keepdims: 0 })],
    [
      "ReduceMean axes input (opset 18)",
      () => single("ReduceMean", [x([2, 3, 4]), c64("a", [2])], {}, { opset: 18 }),
    ],
    ["ArgMax", () => single("ArgMax", [x([2, 3, 4])], { axis: 1, keepdims: 0 })],
    [
      "QuantizeLinear int8 per-axis",
      () =>
        single("QuantizeLinear", [
          x([2, 3, 4]),
          cf("s", [3], [0.1, 0.2, 0.3]),
          { name: "z", init: tensor("int8", [3], [0, 1, -1]) },
        ]),
    ],
    ["QuantizeLinear default uint8", () => single("QuantizeLinear", [x([2, 3]), cf("s", [], [0.1])])],
    [
      "DequantizeLinear",
      () =>
        single("DequantizeLinear", [
          { name: "q", dtype: "uint8", shape: [2, 3] },
          cf("s", [], [0.1]),
          { name: "z", init: tensor("uint8", [], [3]) },
        ]),
    ],
    [
      "ConstantOfShape",
      () => single("ConstantOfShape", [c64("s", [2, 3])], { value: tensor("int32", [1], [5]) }),
    ],
    [
      "Range",
      () =>
        single("Range", [
          { name: "a", init: i64([], [2]) },
          { name: "b", init: i64([], [11]) },
          { name: "d", init: i64([], [3]) },
        ]),
    ],
    ["Expand", () => single("Expand", [x([3, 1]), c64("s", [2, 1, 4])])],
    ["Tile", () => single("Tile", [x([2, 3]), c64("r", [2, 1])])],
    [
      "Gather axis 1",
      () => single("Gather", [x([2, 5, 3]), { name: "i", init: i64([2, 2], [0, 4, -1, 2]) }], { axis: 1 }),
    ],
    ["Gather scalar index", () => single("Gather", [x([5, 3]), { name: "i", init: i64([], [1]) }])],
    [
      "GatherElements",
      () =>
        single("GatherElements", [x([3, 4]), { name: "i", init: i64([3, 2], [0, 1, 2, 3, 0, 1]) }], {
          axis: 1,
        }),
    ],
    [
      "ScatterElements add",
      () =>
        single("ScatterElements", [x([3, 4]), { name: "i", init: i64([1, 2], [0, 3]) }, cf("u", [1, 2])], {
          axis: 1,
          reduction: "add",
        }),
    ],
    [
      "SoftmaxCrossEntropyLoss mean",
      () =>
        single(
          "SoftmaxCrossEntropyLoss",
          [x([4, 3]), { name: "l", init: i64([4], [0, 2, 1, 2]) }],
          {},
          { outputs: 2 },
        ),
    ],
    [
      "SoftmaxCrossEntropyLoss none, spatial",
      () =>
        single(
          "SoftmaxCrossEntropyLoss",
          [x([2, 3, 5]), { name: "l", init: i64([2, 5], [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]) }],
          { reduction: "none" },
          { outputs: 2 },
        ),
    ],
    ["Shape start/end", () => single("Shape", [x([2, 3, 4, 5])], { start: 1, end: -1 })],
    ["Size", () => single("Size", [x([2, 3, 4])])],
  ];
  for (const [name, make] of cases) it(name, async () => void (await agreesWithOrt(make())));
});
