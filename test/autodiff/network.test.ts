import { expect, test } from "vitest";
import { mulberry } from "../../src/autodiff/gradcheck.js";
import { appendBackward } from "../../src/autodiff/index.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, i64, type Tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { zooModel } from "../../src/nn/index.js";
import { crossEntropyLoss } from "../../src/train/losses.js";
import { buildGradientGraph } from "../../src/train/step.js";

// The mnist-cnn layout with a symbolic batch dim "N" (the real training path: shapes come from inferShapes, not
// from a run): Conv(1→8, 3×3, pad 1) Tanh AvgPool2 Conv(8→16) Tanh AvgPool2 Flatten Gemm(784→10), cross-entropy
// with label smoothing. Smooth activations and pools here: with ReLU/MaxPool, thousands of kinks make whole-network
// float32 differences biased (measured 1e-2–1e-1), while those two rules are checked exactly in their own tests.
// Every parameter's gradient is checked along 2 random directions against central differences in float32
// (ε = 1e-2 × the parameter's rms); tolerance 1e-2 relative to ‖∇L‖·rms(v) (measured max 1.6e-3).
test("a CNN with a symbolic batch: loss and every parameter gradient in one run", async () => {
  const rng = mulberry(5);
  const rand = (dims: number[], scale: number) =>
    f32(
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale),
    );
  const params: Record<string, Tensor> = {
    w1: rand([8, 1, 3, 3], 0.3),
    b1: rand([8], 0.1),
    w2: rand([16, 8, 3, 3], 0.1),
    b2: rand([16], 0.1),
    fc: rand([784, 10], 0.05),
    fcb: rand([10], 0.1),
  };
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: ["N", 1, 28, 28] });
  g.inputs.push({ name: "t", dtype: "int64", shape: ["N"] });
  for (const [k, t] of Object.entries(params)) g.inputs.push({ name: k, dtype: "float32", shape: t.dims });
  const pads = [1, 1, 1, 1];
  let h = g.op("Conv", ["x", "w1", "b1"], { pads });
  h = g.op("AveragePool", [g.op("Tanh", [h])], { kernel_shape: [2, 2], strides: [2, 2] });
  h = g.op("Conv", [h, "w2", "b2"], { pads });
  h = g.op("AveragePool", [g.op("Tanh", [h])], { kernel_shape: [2, 2], strides: [2, 2] });
  const logits = g.op("Gemm", [g.op("Flatten", [h]), "fc", "fcb"]);
  const loss = crossEntropyLoss(g, logits, "t", { labelSmoothing: 0.1 });
  const names = Object.keys(params);
  const grads = appendBackward(g, loss, names);
  g.outputs = [loss, ...names.map((n) => grads.get(n)!)].map((name) => ({ name }));
  const session = await openSession(modelOf(g), { threads: 1 });
  const feeds: Record<string, Tensor> = { ...params, x: rand([4, 1, 28, 28], 1), t: i64([4], [3, 1, 4, 1]) };
  const base = await run(session, feeds);
  const lossAt = async (f: Record<string, Tensor>) =>
    (await run(session, f, [loss]))[loss]!.data[0] as number;
  for (const name of names) {
    const grad = base[grads.get(name)!]!.data as Float32Array;
    const x = params[name]!.data as Float32Array;
    const rms = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length);
    const eps = Number(process.env.EPSF ?? 1e-2) * rms;
    const gnorm = Math.sqrt(grad.reduce((a, v) => a + v * v, 0));
    expect(gnorm).toBeGreaterThan(0);
    for (let d = 0; d < 2; d++) {
      const v = Float32Array.from(x, () => rng.normal());
      const plus = Float32Array.from(x, (xi, k) => xi + eps * v[k]!);
      const minus = Float32Array.from(x, (xi, k) => xi - eps * v[k]!);
      const numeric =
        ((await lossAt({ ...feeds, [name]: { ...params[name]!, data: plus } })) -
          (await lossAt({ ...feeds, [name]: { ...params[name]!, data: minus } }))) /
        (2 * eps);
      let analytic = 0;
      let vv = 0;
      for (let k = 0; k < x.length; k++) {
        const step = (plus[k]! - minus[k]!) / (2 * eps);
        analytic += grad[k]! * step;
        vv += step * step;
      }
      const err =
        Math.abs(analytic - numeric) / Math.max(gnorm * Math.sqrt(vv / x.length), Math.abs(numeric));
      if (process.env.EPSF) console.log(name, err.toExponential(2), analytic, numeric);
      else expect(err, `${name}: analytic ${analytic}, numeric ${numeric}`).toBeLessThan(1e-2);
    }
  }
});

// The zoo's mnist-cnn (symbolic batch, ReLU + MaxPool2) as the trainer builds it: its backward pass must take the
// fast ways of the Conv and MaxPool rules (no ConvTranspose, no MaxPool Indices/ScatterElements; dW by the one-hot
// Conv and one FusedMatMul). Its gradients are compared with PyTorch's in test/train/torch-grads.test.ts.
test("mnist-cnn's gradient graph uses the fast Conv and MaxPool ways", () => {
  const { model } = buildGradientGraph(zooModel("mnist-cnn"));
  const ops = model.graph.nodes.map((n) => n.opType);
  expect(ops).not.toContain("ConvTranspose");
  expect(ops).not.toContain("ScatterElements");
  expect(model.graph.nodes.filter((n) => n.opType === "MaxPool").every((n) => n.outputs.length === 1)).toBe(
    true,
  );
  // conv1's and conv2's weight gradients
  const convGrads = model.graph.nodes.filter(
    (n) => n.opType === "FusedMatMul" && n.domain === "com.microsoft" && /^conv[12]_grad/.test(n.name),
  );
  expect(convGrads.length).toBe(2);
});
