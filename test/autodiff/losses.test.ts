import { describe, expect, test } from "vitest";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, i64 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { bceWithLogitsLoss, crossEntropyLoss, mseLoss } from "../../src/train/losses.js";
import { expectGradOk } from "./check-helpers.js";

// Loss values are compared with float64 references computed here in JS (tolerance 1e-5 relative, float32 ORT);
// gradients with central differences in float64 (ε = 1e-6, every element, tolerance 1e-6) where ORT has double
// kernels, else float32 (ε = 1e-2, directional, tolerance 1e-3).
const logits = [0.2, -1.3, 0.7, 2.1, 0.05, -0.4, 1.1, -2.2, 0.9, 0.3, -0.6, 1.7];
const labels = [2, 0, 3];

async function value(
  build: (g: Graph) => string,
  feeds: Record<string, ReturnType<typeof f32>>,
): Promise<number> {
  const g = new Graph();
  for (const [k, t] of Object.entries(feeds)) g.inputs.push({ name: k, dtype: t.dtype, shape: t.dims });
  const out = build(g);
  g.outputs = [{ name: out }];
  const r = await run(await openSession(modelOf(g), { threads: 1 }), feeds);
  return (r[out]!.data as Float32Array)[0]!;
}

function refCrossEntropy(eps: number, ignore?: number): number {
  let total = 0;
  let count = 0;
  for (let n = 0; n < 3; n++) {
    if (labels[n] === ignore) continue;
    const row = logits.slice(4 * n, 4 * n + 4);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    const logp = row.map((v) => v - lse);
    total += -(1 - eps) * logp[labels[n]!]! - (eps / 4) * logp.reduce((a, b) => a + b, 0);
    count++;
  }
  return total / count;
}

describe("softmax cross-entropy", () => {
  for (const [eps, ignore] of [
    [0, undefined],
    [0.1, undefined],
    [0, 0],
  ] as const) {
    test(`value and gradient, smoothing ${eps}, ignore ${ignore}`, async () => {
      const feeds = { x: f32([3, 4], logits), t: i64([3], labels) };
      const got = await value(
        (g) => crossEntropyLoss(g, "x", "t", { labelSmoothing: eps, ignoreIndex: ignore }),
        feeds,
      );
      expect(Math.abs(got - refCrossEntropy(eps, ignore)) / refCrossEntropy(eps, ignore)).toBeLessThan(1e-5);
      await expectGradOk(
        {
          inputs: { x: { dims: [3, 4], data: logits }, t: { dims: [3], data: labels, dtype: "int64" } },
          build: (g) => crossEntropyLoss(g, "x", "t", { labelSmoothing: eps, ignoreIndex: ignore }),
          dtype: "float32",
        },
        1e-3,
      );
    });
  }
  test("SoftmaxCrossEntropyLoss rule: class weights, ignore_index, [N, C, d] scores, every reduction", async () => {
    for (const reduction of ["mean", "sum", "none"]) {
      await expectGradOk(
        {
          inputs: {
            x: { dims: [2, 3, 4] },
            w: { dims: [3], data: [0.5, 1.5, 2], wrt: false },
            t: { dims: [2, 4], data: [0, 2, 1, 1, 2, -1, 0, 2], dtype: "int64" },
          },
          build: (g) => g.op("SoftmaxCrossEntropyLoss", ["x", "t", "w"], { reduction, ignore_index: -1 }),
          dtype: "float32",
        },
        1e-3,
      );
    }
  });
});

test("MSE: value and gradients (float64)", async () => {
  const p = [0.5, -1, 2, 0.25];
  const t = [1, -0.5, 1.5, 0];
  const got = await value((g) => mseLoss(g, "p", "t"), { p: f32([4], p), t: f32([4], t) });
  const want = p.reduce((a, v, i) => a + (v - t[i]!) ** 2, 0) / 4;
  expect(Math.abs(got - want) / want).toBeLessThan(1e-6);
  await expectGradOk(
    {
      inputs: { p: { dims: [2, 3] }, t: { dims: [2, 3] } },
      build: (g) => mseLoss(g, "p", "t"),
      elementwise: 100,
    },
    1e-6,
  );
});

test("BCE with logits: stable at |x| = 100, value and gradient", async () => {
  const x = [100, -100, 0, 2.5, -1.5, 0.3];
  const y = [0, 1, 1, 0.2, 0.9, 0];
  const got = await value((g) => bceWithLogitsLoss(g, "x", "y"), { x: f32([6], x), y: f32([6], y) });
  const softplus = (v: number) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));
  const want = x.reduce((a, v, i) => a + softplus(v) - v * y[i]!, 0) / 6;
  expect(Number.isFinite(got)).toBe(true);
  expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
  // the gradient at x = 0 is σ(0) − y = 0.5 − y (a smooth function, no kink)
  await expectGradOk(
    {
      inputs: {
        x: { dims: [6], data: [0, 2.5, -1.5, 0.3, 4, -6] },
        y: { dims: [6], data: [1, 0.2, 0.9, 0, 0.5, 0.1], wrt: false },
      },
      build: (g) => bceWithLogitsLoss(g, "x", "y"),
      dtype: "float32",
    },
    1e-3,
  );
});
