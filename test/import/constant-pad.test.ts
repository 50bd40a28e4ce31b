import { describe, expect, test } from "vitest";
import { importOnnx } from "../../src/nn/import/index.js";
import { decodeModel, encodeModel, modelOf } from "../../src/onnx/codec.js";
import type { Model } from "../../src/onnx/ir.js";
import { f32 } from "../../src/onnx/tensor.js";
import { handModel, maxAbsDiff, randomF32, runModel } from "./helpers.js";

const copy = (m: Model) => decodeModel(encodeModel(m));
const filled = (dims: number[], v: number) =>
  f32(dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(v));

/** The model at its fixed batch of 2 and the imported one at batch 3: the first two samples must agree exactly. */
async function sameOnSamples(file: Model, sample: number[]): Promise<Float32Array> {
  const { net } = importOnnx(copy(file), { outputs: "all" });
  const x3 = randomF32([3, ...sample], 5);
  const per = sample.reduce((a, b) => a * b, 1);
  const x2 = f32([2, ...sample], (x3.data as Float32Array).slice(0, 2 * per));
  const want = (await runModel(file, { x: x2 })).data as Float32Array;
  const got = await runModel(modelOf(net.eval), { x: x3 });
  expect(got.dims[0]).toBe(3);
  const rows = (got.data as Float32Array).slice(0, want.length);
  expect(maxAbsDiff(rows, want)).toBe(0);
  return got.data as Float32Array;
}

describe("a fixed batch pinned by a Concat with constants becomes dynamic through Pad", () => {
  test("TFLite channel padding: Concat(x, zeros[2, 3, 4, 4]) on the channel axis is a Pad of zeros", async () => {
    const file = handModel([2, 2, 4, 4], (g) => {
      const r = g.op("Relu", ["x"], {}, { name: "relu" });
      const c = g.op(
        "Concat",
        [r, g.constant("zeros", filled([2, 3, 4, 4], 0))],
        { axis: 1 },
        { name: "pad_c" },
      );
      return g.op("Conv", [c, g.constant("w", randomF32([2, 5, 1, 1], 1))], {}, { name: "conv" });
    });
    const { net, report } = importOnnx(copy(file), { outputs: "all" });
    expect(report.batch).toMatchObject({
      kind: "rewritten",
      fixed: 2,
      constantPads: [{ node: "pad_c", constants: ["zeros"], axis: 1, value: 0 }],
    });
    const pad = net.eval.nodes.find((n) => n.name === "pad_c")!;
    expect(pad.opType).toBe("Pad");
    expect(pad.inputs).toHaveLength(2); // value 0 is Pad's default: no scalar input
    expect(net.eval.initializers.has("zeros")).toBe(false);
    expect(net.params).toEqual(["w"]);
    await sameOnSamples(file, [2, 4, 4]);
  });

  test("constants around and between two batch-carrying values, of one non-zero value, on a negative axis", async () => {
    const file = handModel([2, 3], (g) => {
      const r = g.op("Relu", ["x"], {}, { name: "relu" });
      const k = (n: string, w: number) => g.constant(n, filled([2, w], 1.5));
      return g.op("Concat", [k("a", 1), "x", k("b", 2), r, k("c", 1)], { axis: -1 }, { name: "cat" });
    });
    const { net, report } = importOnnx(copy(file), { outputs: "all" });
    expect(report.batch).toMatchObject({
      constantPads: [{ node: "cat", constants: ["a", "b", "c"], axis: 1 }],
    });
    expect(net.eval.nodes.filter((n) => n.opType === "Pad")).toHaveLength(2);
    expect(net.eval.nodes.find((n) => n.name === "cat")!.opType).toBe("Concat");
    const out = await sameOnSamples(file, [3]);
    // sample 3 (new to the batch): [1.5, x, 1.5, 1.5, relu(x), 1.5]
    expect([out[20], out[24], out[25], out[29]]).toEqual([1.5, 1.5, 1.5, 1.5]);
  });

  test("a constant that is not uniform, or constants of two values padding one input, are refused by name", () => {
    const ramp = handModel([2, 2], (g) =>
      g.op("Concat", ["x", g.constant("ramp", f32([2, 2], [0, 1, 2, 3]))], { axis: 1 }, { name: "cat" }),
    );
    expect(() => importOnnx(ramp)).toThrow(
      /node 'cat' \(Concat\).*batch is fixed at 2.*constant input 'ramp' holds different values/,
    );
    const mixed = handModel([2, 2], (g) =>
      g.op(
        "Concat",
        [g.constant("zeros", filled([2, 1], 0)), "x", g.constant("ones", filled([2, 1], 1))],
        { axis: 1 },
        { name: "cat" },
      ),
    );
    expect(() => importOnnx(mixed)).toThrow(
      /node 'cat' \(Concat\).*constants of different values pad the same value/,
    );
  });
});
