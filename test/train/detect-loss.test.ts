import { expect, test } from "vitest";
import { encodeTargets, type TargetGrid, targetShape } from "../../src/detect/targets.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { centerNetLoss } from "../../src/train/detect-loss.js";
import { expectGradOk } from "../autodiff/check-helpers.js";

// Two images on a 4×4 grid (stride 4, 3 classes): targets from real boxes, so the heatmap has exact 1s at the
// centres, Gaussian shoulders and box weights at the neighbours.
const grid: TargetGrid = { classes: 3, stride: 4, rows: 4, cols: 4 };
const [T, R, C] = targetShape(grid) as [number, number, number];
const per = T * R * C;
const targets = new Float32Array(2 * per);
encodeTargets(
  [
    { cls: 0, box: { x1: 1, y1: 2, x2: 11, y2: 13 } },
    { cls: 2, box: { x1: 8, y1: 6, x2: 15, y2: 16 } },
  ],
  grid,
  targets,
  0,
);
encodeTargets([{ cls: 1, box: { x1: 3, y1: 1, x2: 14, y2: 9 } }], grid, targets, per);
const outDims = [2, grid.classes + 4, R, C];
const outSize = outDims.reduce((a, b) => a * b, 1);
// outputs away from values where a predicted distance equals a target one (the min's kink)
const output = Array.from({ length: outSize }, (_, i) => Math.sin(1.7 * i + 0.3) * 1.5);

/** The loss in float64 from its definition (CenterNet focal + λ·weighted 1 − IoU), independent of the graph. */
function reference(out: ArrayLike<number>, tg: ArrayLike<number>): number {
  const K = grid.classes;
  const plane = R * C;
  const sp = (z: number) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  let focal = 0;
  let npos = 0;
  let box = 0;
  let wsum = 0;
  for (let n = 0; n < 2; n++) {
    const o = n * (K + 4) * plane;
    const t = n * T * plane;
    for (let c = 0; c < K; c++)
      for (let p = 0; p < plane; p++) {
        const z = out[o + c * plane + p]!;
        const y = tg[t + c * plane + p]!;
        if (y === 1) {
          npos++;
          focal += (1 - sig(z)) ** 2 * sp(-z);
        } else focal += (1 - y) ** 4 * sig(z) ** 2 * sp(z);
      }
    for (let p = 0; p < plane; p++) {
      const d = [0, 1, 2, 3].map((k) => sp(out[o + (K + k) * plane + p]!));
      const g = [0, 1, 2, 3].map((k) => tg[t + (K + k) * plane + p]!);
      const w = tg[t + (K + 4) * plane + p]!;
      const inter =
        (Math.min(d[0]!, g[0]!) + Math.min(d[2]!, g[2]!)) * (Math.min(d[1]!, g[1]!) + Math.min(d[3]!, g[3]!));
      const union = (d[0]! + d[2]!) * (d[1]! + d[3]!) + (g[0]! + g[2]!) * (g[1]! + g[3]!) - inter + 1e-6;
      box += w * (1 - inter / union);
      wsum += w;
    }
  }
  return focal / Math.max(1, npos) + (2 * box) / Math.max(1, wsum);
}

test("targets have the structure the loss relies on", () => {
  // three centres at exactly 1, box weights present, distances positive where weighted
  expect(Array.from(targets).filter((v, i) => v === 1 && i % per < grid.classes * R * C).length).toBe(3);
  for (let n = 0; n < 2; n++)
    for (let p = 0; p < R * C; p++) {
      const w = targets[n * per + (grid.classes + 4) * R * C + p]!;
      if (w > 0)
        for (let k = 0; k < 4; k++)
          expect(targets[n * per + (grid.classes + k) * R * C + p]).toBeGreaterThan(0);
    }
});

test("CenterNet loss: the graph's value equals the float64 definition", async () => {
  const loss = centerNetLoss(grid);
  const g = new Graph();
  g.inputs.push(
    { name: "out", dtype: "float32", shape: outDims },
    { name: "t", dtype: "float32", shape: [2, T, R, C] },
  );
  const y = loss.build(g, "out", "t");
  g.outputs = [{ name: y }];
  const r = await run(await openSession(modelOf(g), { threads: 1 }), {
    out: f32(outDims, output),
    t: f32([2, T, R, C], targets),
  });
  const got = (r[y]!.data as Float32Array)[0]!;
  const want = reference(Float32Array.from(output), targets);
  expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
});

// ORT has no float64 Softplus kernel: the check runs in float32 (ε = 1e-2, directional, tolerance 1e-3), as the
// other losses built on Softplus do
test("CenterNet loss: gradient against central differences (float32, 8 random directions)", async () => {
  const loss = centerNetLoss(grid);
  await expectGradOk(
    {
      inputs: {
        out: { dims: outDims, data: output },
        t: { dims: [2, T, R, C], data: targets, wrt: false },
      },
      build: (g) => loss.build(g, "out", "t"),
      dtype: "float32",
      directions: 8,
    },
    1e-3,
  );
});
