import { describe, expect, test } from "vitest";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import {
  appendDistillLoss,
  DistillLossError,
  type DistillLossSpec,
  distillLoss,
} from "../../src/train/distill-loss.js";
import { expectGradOk } from "../autodiff/check-helpers.js";

// Output [2, 10]: a 2-group softmax segment (2 × 3 classes), a 2-value sigmoid segment and a 2-value regression.
const spec: DistillLossSpec = {
  size: 10,
  segments: [
    { name: "cls", offset: 0, size: 6, kind: "softmax", classes: 3, temperature: 2 },
    { name: "obj", offset: 6, size: 2, kind: "sigmoid", temperature: 1.5, weight: 0.5 },
    { name: "box", offset: 8, size: 2, kind: "regression", scale: 4 },
  ],
};
const s = [
  0.3, -1.2, 0.8, 1.5, 0.1, -0.4, 0.9, -2.1, 0.25, -0.6, -0.7, 0.4, 1.1, -0.3, 0.6, 2.2, -1.4, 0.3, -0.2, 1.3,
];
const t = [
  0.1, -0.8, 1.2, 1.1, 0.5, -0.9, 1.4, -1.6, 0.5, -0.2, -0.2, 0.9, 0.7, 0.1, 0.2, 1.8, -0.9, 0.6, 0.1, 1.0,
];

function reference(sp: DistillLossSpec, out: number[], tg: number[], n: number, width: number): number {
  const lse = (v: number[]) => {
    const m = Math.max(...v);
    return m + Math.log(v.reduce((a, x) => a + Math.exp(x - m), 0));
  };
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  let total = 0;
  for (const seg of sp.segments) {
    let term = 0;
    const T = seg.temperature ?? 1;
    const c = seg.classes ?? seg.size;
    for (let b = 0; b < n; b++) {
      const so = out.slice(b * width + seg.offset, b * width + seg.offset + seg.size);
      const te = tg.slice(b * width + seg.offset, b * width + seg.offset + seg.size);
      if (seg.kind === "softmax") {
        for (let k = 0; k < seg.size / c; k++) {
          const zs = so.slice(k * c, k * c + c).map((x) => x / T);
          const zt = te.slice(k * c, k * c + c).map((x) => x / T);
          const [ls, lt] = [lse(zs), lse(zt)];
          term += zt.reduce((a, z, j) => a + Math.exp(z - lt) * (z - lt - (zs[j]! - ls)), 0) * T * T;
        }
        term /= 1;
      } else if (seg.kind === "sigmoid") {
        for (let j = 0; j < seg.size; j++) {
          const p = sig(te[j]! / T);
          const z = so[j]! / T;
          term += (Math.max(z, 0) - z * p + Math.log1p(Math.exp(-Math.abs(z)))) * T * T;
        }
      } else for (let j = 0; j < seg.size; j++) term += (seg.scale ?? 1) * (so[j]! - te[j]!) ** 2;
    }
    const count = seg.kind === "softmax" ? (n * seg.size) / c : n * seg.size;
    total += ((seg.weight ?? 1) * term) / count;
  }
  return total;
}

async function lossValue(sp: DistillLossSpec, out: number[], tg: number[], width: number): Promise<number> {
  const g = new Graph();
  const n = out.length / sp.size;
  g.inputs.push(
    { name: "s", dtype: "float32", shape: [n, sp.size] },
    { name: "t", dtype: "float32", shape: [n, width] },
  );
  const l = appendDistillLoss(g, "s", "t", sp);
  g.outputs = [{ name: l }];
  const r = await run(await openSession(modelOf(g), { threads: 1 }), {
    s: f32([n, sp.size], out),
    t: f32([n, width], tg),
  });
  return (r[l]!.data as Float32Array)[0]!;
}

describe("distillation loss", () => {
  test("value matches a float64 reference: softmax KL (T², groups), sigmoid BCE, scaled MSE", async () => {
    const got = await lossValue(spec, s, t, 10);
    const want = reference(spec, s, t, 2, 10);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
  });

  test("the loss is zero (KL) or the teacher's entropy (BCE) when the student equals the teacher", async () => {
    const only = { size: 10, segments: [spec.segments[0]!, spec.segments[2]!] };
    expect(Math.abs(await lossValue(only, t, t, 10))).toBeLessThan(1e-6);
  });

  test("gradient by finite differences (float32, directional): every segment kind and the label term", async () => {
    const withLabels: DistillLossSpec = {
      size: 10,
      segments: [
        { name: "cls", offset: 0, size: 3, kind: "softmax", temperature: 3 },
        ...spec.segments.slice(1),
      ],
      labels: { segment: 0, weight: 0.7 },
    };
    for (const [sp, width, tg] of [
      [spec, 10, t],
      [withLabels, 11, [...t.slice(0, 10), 2, ...t.slice(10), 0]],
    ] as const) {
      await expectGradOk(
        {
          inputs: { s: { dims: [2, 10], data: s }, t: { dims: [2, width], data: [...tg], wrt: false } },
          build: (g) => appendDistillLoss(g, "s", "t", sp),
          dtype: "float32",
        },
        1e-3,
      );
    }
  });

  test("with labels: adds weight × cross-entropy on the labelled segment", async () => {
    const sp: DistillLossSpec = {
      size: 10,
      segments: [{ name: "cls", offset: 0, size: 4, kind: "softmax" }],
      labels: { segment: 0, weight: 0.5 },
    };
    const tg = [...t.slice(0, 10), 3, ...t.slice(10), 1];
    const got = await lossValue(sp, s, tg, 11);
    let ce = 0;
    for (const [b, label] of [
      [0, 3],
      [1, 1],
    ] as const) {
      const row = s.slice(b * 10, b * 10 + 4);
      const m = Math.max(...row);
      ce += m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0)) - row[label]!;
    }
    const want = reference(sp, s, [...t], 2, 10) + (0.5 * ce) / 2;
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
    expect(distillLoss(sp).targetShape).toEqual([11]);
  });

  test("bad specs are refused, naming the segment", () => {
    expect(() =>
      distillLoss({ size: 4, segments: [{ name: "cls", offset: 2, size: 4, kind: "softmax" }] }),
    ).toThrow(/'cls' \[2, 6\) lies outside the 4 outputs/);
    expect(() =>
      distillLoss({ size: 6, segments: [{ name: "cls", offset: 0, size: 6, kind: "softmax", classes: 4 }] }),
    ).toThrow(DistillLossError);
    expect(() =>
      distillLoss({ size: 2, segments: [{ name: "box", offset: 0, size: 2, kind: "regression", scale: 0 }] }),
    ).toThrow(/scale must be a positive number/);
    expect(() =>
      distillLoss({
        size: 2,
        segments: [{ name: "box", offset: 0, size: 2, kind: "regression" }],
        labels: { segment: 0, weight: 1 },
      }),
    ).toThrow(/needs a softmax segment/);
  });
});
