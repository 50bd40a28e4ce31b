import { describe, expect, it } from "vitest";
import { NetBuilder } from "../../src/nn/builder.js";
import { modelOf } from "../../src/onnx/codec.js";
import { cloneGraph, Graph } from "../../src/onnx/ir.js";
import { type Tensor, tensor } from "../../src/onnx/tensor.js";
import { foldBatchNorms } from "../../src/quant/bn-fold.js";
import { calibrate } from "../../src/quant/calibrate.js";
import { lowerFakeQuant } from "../../src/quant/fake-quant.js";
import { placeQuant } from "../../src/quant/placement.js";
import { applyQuant } from "../../src/quant/prepare.js";
import { preset } from "../../src/quant/qconfig.js";
import { openSession, run } from "../../src/runtime/session.js";
import { buildGradientGraph } from "../../src/train/step.js";
import { seeded } from "../helpers/random.js";
import { batchOf, synthDataset } from "./fixtures.js";

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

describe("BN folding during QAT with batch statistics", () => {
  it("the Conv feeding training-mode BN computes Conv(x, q(w·f)) / f + b: the bias once, after the division", async () => {
    const b = new NetBuilder("conv-bn", [3, 8, 8], { seed: 4 });
    const y = b.conv2d(b.input, { name: "conv", out: 6, kernel: 3, padding: 1, bias: true });
    const net = b.build(
      b.linear(b.flatten(b.relu(b.batchNorm2d(y, { name: "bn" }))), { name: "fc", out: 10 }),
    );
    // f = γ/√(var + ε) far from 1 and a bias far from 0, so a missing or doubled term shows
    for (const [k, t] of [
      ["bn.weight", tensor("float32", [6], rand(6, 0.3, 3))],
      ["bn.running_var", tensor("float32", [6], rand(6, 0.05, 4))],
      ["conv.bias", tensor("float32", [6], rand(6, -2, 2))],
    ] as const) {
      net.train.initializers.set(k, t);
      net.eval.initializers.set(k, t);
    }
    const placement = placeQuant(net, preset("ort-cpu"));
    const qp = await calibrate(net, placement, synthDataset([3, 8, 8], 32, 5), { batches: 1, batchSize: 16 });
    const q = applyQuant(net, placement, qp);
    const { model } = buildGradientGraph(q);
    const g = model.graph;
    lowerFakeQuant(g);
    const conv = g.nodes.find((n) => n.opType === "Conv")!;
    const bnIn = g.nodes.find((n) => n.opType === "BatchNormalization")!.inputs[0]!;
    const producer = g.nodes.find((n) => n.outputs.includes(conv.inputs[1]!))!;
    // q(w·f): the folded weight's fake-quant output, which the train graph divides by f again
    const wq = producer.opType === "Div" ? producer.inputs[0]! : conv.inputs[1]!;
    g.outputs.push({ name: conv.inputs[0]! }, { name: wq }, { name: bnIn });
    const s = await openSession(modelOf(g), { optimization: "disabled" });
    const x = batchOf([3, 8, 8], 4, 6);
    const feeds: Record<string, Tensor> = { x, labels: tensor("int64", [4], [0, 1, 2, 3]) };
    for (const k of [...q.params, ...q.buffers]) feeds[k] = q.train.initializers.get(k)!;
    const out = await run(s, feeds, [conv.inputs[0]!, wq, bnIn]);
    await s.release();

    const init = (k: string) => q.train.initializers.get(k)!.data as Float32Array;
    const [gamma, variance, bias] = [init("bn.weight"), init("bn.running_var"), init("conv.bias")];
    const f = Array.from(gamma, (v, c) =>
      Math.fround(v / Math.fround(Math.sqrt(Math.fround(variance[c]! + Math.fround(1e-5))))),
    );
    const ref = new Graph();
    ref.inputs.push({ name: "xq", dtype: "float32" }, { name: "wq", dtype: "float32" });
    ref.initializers.set("f", tensor("float32", [6, 1, 1], f));
    ref.initializers.set("b", tensor("float32", [6, 1, 1], bias));
    const c = ref.op("Conv", ["xq", "wq"], conv.attrs);
    ref.op("Add", [ref.op("Div", [c, "f"]), "b"], {}, { output: "out" });
    ref.outputs.push({ name: "out", dtype: "float32" });
    const rs = await openSession(modelOf(ref), { optimization: "disabled" });
    const want = (await run(rs, { xq: out[conv.inputs[0]!]!, wq: out[wq]! })).out!.data as Float32Array;
    await rs.release();
    const got = out[bnIn]!.data as Float32Array;
    const top = Math.max(...Array.from(want, Math.abs));
    expect(top).toBeGreaterThan(1);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * top);
  });
});
