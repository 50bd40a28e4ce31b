import { describe, expect, it } from "vitest";
import { modelOf } from "../../src/onnx/codec.js";
import { cloneGraph, Graph } from "../../src/onnx/ir.js";
import { tensor } from "../../src/onnx/tensor.js";
import { foldBatchNorms } from "../../src/quant/bn-fold.js";
import { openSession, run } from "../../src/runtime/session.js";
import { seeded } from "../helpers/random.js";

const r = seeded(21);
const rand = (n: number, lo: number, hi: number) =>
  Float32Array.from({ length: n }, () => lo + (hi - lo) * r());

/** Conv(8→12, 3×3, stride 2, pad 1, optional bias) → BatchNormalization (inference mode) with non-trivial statistics. */
function convBn(bias: boolean): Graph {
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: [2, 8, 9, 9] });
  g.initializers.set("conv.weight", tensor("float32", [12, 8, 3, 3], rand(12 * 72, -0.5, 0.5)));
  if (bias) g.initializers.set("conv.bias", tensor("float32", [12], rand(12, -1, 1)));
  g.initializers.set("bn.weight", tensor("float32", [12], rand(12, 0.2, 3)));
  g.initializers.set("bn.bias", tensor("float32", [12], rand(12, -2, 2)));
  g.initializers.set("bn.running_mean", tensor("float32", [12], rand(12, -3, 3)));
  g.initializers.set("bn.running_var", tensor("float32", [12], rand(12, 0.01, 9)));
  const y = g.op("Conv", bias ? ["x", "conv.weight", "conv.bias"] : ["x", "conv.weight"], {
    kernel_shape: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  });
  g.op(
    "BatchNormalization",
    [y, "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
    { epsilon: { type: "float", value: 1e-3 } },
    { output: "out" },
  );
  g.outputs.push({ name: "out", dtype: "float32" });
  return g;
}

async function forward(g: Graph, x: Float32Array): Promise<Float32Array> {
  const s = await openSession(modelOf(g), { optimization: "disabled" });
  const out = await run(s, { x: tensor("float32", [2, 8, 9, 9], x) });
  await s.release();
  return out.out!.data as Float32Array;
}

describe("BN folding", () => {
  for (const bias of [false, true]) {
    it(`Conv${bias ? " with bias" : ""} + BN (inference mode) equals the folded Conv within 1e-5`, async () => {
      const g = convBn(bias);
      const folded = cloneGraph(g);
      expect(foldBatchNorms(folded)).toBe(1);
      expect(folded.nodes.some((n) => n.opType === "BatchNormalization")).toBe(false);
      const x = rand(2 * 8 * 81, -2, 2);
      const a = await forward(g, x);
      const b = await forward(folded, x);
      let worst = 0;
      for (let i = 0; i < a.length; i++)
        worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(a[i]!)));
      expect(worst).toBeLessThan(1e-5);
      // outputs are far from trivially equal: BN changed the conv output a lot
      const plain = cloneGraph(g);
      plain.nodes = plain.nodes.slice(0, 1);
      plain.nodes[0]!.outputs = ["out"];
      const c = await forward(plain, x);
      expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - c[i]!)))).toBeGreaterThan(0.5);
    });
  }
});
