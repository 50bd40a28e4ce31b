import { describe, expect, test } from "vitest";
import { inputLayout } from "../../src/nn/import/index.js";
import { handModel } from "./helpers.js";

const layoutOf = (shape: (number | string)[], transpose?: number[]) => {
  const m = handModel(shape, (g) =>
    transpose ? g.op("Transpose", ["x"], { perm: transpose }) : g.op("Relu", ["x"]),
  );
  return inputLayout(m.graph, "x", shape);
};

describe("the input layout of an imported model", () => {
  test("read from a Transpose to NCHW in front, else from where an image channel count sits", () => {
    expect(layoutOf(["n", 64, 64, 8], [0, 3, 1, 2])).toBe("nhwc"); // tf2onnx: any channel count
    expect(layoutOf(["n", 64, 64, 8], [0, 2, 3, 1])).toBe("nchw");
    expect(layoutOf(["n", 32, 32, 3])).toBe("nhwc");
    expect(layoutOf(["n", 32, 32, 1])).toBe("nhwc");
    expect(layoutOf(["n", 3, 32, 32])).toBe("nchw");
    expect(layoutOf(["n", 1, 28, 28])).toBe("nchw");
    expect(layoutOf(["n", 3, 32, 3])).toBe("nchw"); // ambiguous: the ONNX default
    expect(layoutOf(["n", 10])).toBe("nchw"); // not an image: the axis after the batch
  });
});
