import { describe, expect, it } from "vitest";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { tensor } from "../../src/onnx/tensor.js";
import {
  emitFakeQuant,
  fakeQuantize,
  lowerFakeQuant,
  type QuantDType,
  roundHalfEven,
} from "../../src/quant/fake-quant.js";
import { openSession, run } from "../../src/runtime/session.js";
import { seeded } from "../helpers/random.js";

interface Case {
  name: string;
  dtype: QuantDType;
  qmin: number;
  qmax: number;
  dims: number[];
  axis: number;
  scales: number[];
  zps: number[];
}

/** ORT's QuantizeLinear → DequantizeLinear, written by hand (no qat code involved). */
async function ortQdq(x: Float32Array, c: Case): Promise<Float32Array> {
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: c.dims });
  const sd = c.axis >= 0 ? [c.scales.length] : [];
  g.initializers.set("s", tensor("float32", sd, c.scales));
  g.initializers.set("z", tensor(c.dtype, sd, c.zps));
  const attrs: Record<string, number> = c.axis >= 0 ? { axis: c.axis } : {};
  const q = g.op("QuantizeLinear", ["x", "s", "z"], attrs);
  g.op("DequantizeLinear", [q, "s", "z"], attrs, { output: "y" });
  g.outputs.push({ name: "y", dtype: "float32" });
  const s = await openSession(modelOf(g), { optimization: "disabled" });
  const out = await run(s, { x: tensor("float32", c.dims, x) });
  await s.release();
  return out.y!.data as Float32Array;
}

/** qat's lowered FakeQuantize node. */
async function lowered(x: Float32Array, c: Case): Promise<Float32Array> {
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: c.dims });
  const sd = c.axis >= 0 ? [c.scales.length] : [];
  g.initializers.set("s", tensor("float32", sd, c.scales));
  g.initializers.set("z", tensor(c.dtype, sd, c.zps));
  const spec = {
    qmin: c.qmin,
    qmax: c.qmax,
    dtype: c.dtype,
    axis: c.axis,
    grad: "ste" as const,
    gradScale: 1,
    learnZeroPoint: false,
  };
  const y = emitFakeQuant(g, "x", "s", "z", spec, { name: "fq" });
  g.outputs.push({ name: y, dtype: "float32" });
  expect(lowerFakeQuant(g)).toBe(1);
  const s = await openSession(modelOf(g), { optimization: "basic" });
  const out = await run(s, { x: tensor("float32", c.dims, x) });
  await s.release();
  return out[y]!.data as Float32Array;
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

describe("rounding", () => {
  it("exact .5 ties round to even, in JS and in the lowered graph", async () => {
    const ties = [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 126.5, -127.5];
    expect(ties.map(roundHalfEven)).toEqual([-4, -2, -2, -0, 0, 2, 2, 4, 4, 126, -128]);
    expect(Math.round(2.5)).toBe(3); // why roundHalfEven exists
    const c: Case = {
      name: "ties",
      dtype: "int8",
      qmin: -128,
      qmax: 127,
      dims: [ties.length],
      axis: -1,
      scales: [0.25],
      zps: [0],
    };
    // x = t · 0.25 divides exactly back to the tie t
    const x = Float32Array.from(ties, (t) => t * 0.25);
    const y = await lowered(x, c);
    expect(Array.from(y, (v) => v / 0.25)).toEqual([-4, -2, -2, 0, 0, 2, 2, 4, 4, 126, -128]);
    expect(bits(y)).toEqual(bits(fakeQuantize(x, c.dims, c.scales, c.zps, c.qmin, c.qmax)));
  });
});

describe("fake-quant equals onnxruntime's QuantizeLinear → DequantizeLinear bit for bit", () => {
  const r = seeded(11);
  const cases: Case[] = [
    {
      name: "uint8 asymmetric per tensor",
      dtype: "uint8",
      qmin: 0,
      qmax: 255,
      dims: [4, 3, 5, 7],
      axis: -1,
      scales: [0.0371],
      zps: [117],
    },
    {
      name: "int8 symmetric per channel",
      dtype: "int8",
      qmin: -128,
      qmax: 127,
      dims: [6, 3, 3, 3],
      axis: 0,
      scales: [0.013, 0.0071, 0.0299, 0.1113, 0.0047, 0.0583],
      zps: [0, 0, 0, 0, 0, 0],
    },
    {
      name: "int8 per channel on axis 1 (Gemm weight, transB=0)",
      dtype: "int8",
      qmin: -128,
      qmax: 127,
      dims: [40, 5],
      axis: 1,
      scales: [0.021, 0.0133, 0.0077, 0.0419, 0.0093],
      zps: [3, -7, 0, 12, -1],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const n = c.dims.reduce((a, b) => a * b, 1);
      // values across and beyond the range, plus exact ties x = (k + 0.5)·s
      const smax = Math.max(...c.scales);
      const x = Float32Array.from({ length: n }, (_, i) =>
        i % 17 === 0 ? (Math.floor(r() * 40) - 20 + 0.5) * c.scales[0]! : (r() - 0.5) * 300 * smax,
      );
      const ref = await ortQdq(x, c);
      const js = fakeQuantize(x, c.dims, c.scales, c.zps, c.qmin, c.qmax, c.axis);
      expect(bits(js)).toEqual(bits(ref));
      expect(bits(await lowered(x, c))).toEqual(bits(ref));
      // not vacuous: the values really were quantized and some saturated
      expect(ref.some((v, i) => v !== x[i])).toBe(true);
      expect(new Set(Array.from(ref)).size).toBeGreaterThan(20);
    });
  }

  it("narrow and sub-8-bit ranges: the lowered graph saturates to [qmin, qmax] as the JS reference does", async () => {
    for (const [qmin, qmax, dtype] of [
      [-8, 7, "int8"],
      [-127, 127, "int8"],
      [-64, 63, "int8"],
      [0, 15, "uint8"],
    ] as [number, number, QuantDType][]) {
      const c: Case = {
        name: "narrow",
        dtype,
        qmin,
        qmax,
        dims: [3, 50],
        axis: 0,
        scales: [0.0913, 0.0217, 0.0561],
        zps: [0, dtype === "uint8" ? 3 : 0, 0],
      };
      const x = Float32Array.from({ length: 150 }, () => (r() - 0.5) * 12);
      const y = await lowered(x, c);
      expect(bits(y)).toEqual(bits(fakeQuantize(x, c.dims, c.scales, c.zps, qmin, qmax, 0)));
      const codes = Array.from(
        y,
        (v, i) => Math.round(v / c.scales[Math.floor(i / 50)]!) + c.zps[Math.floor(i / 50)]!,
      );
      expect(Math.min(...codes)).toBe(qmin);
      expect(Math.max(...codes)).toBe(qmax);
    }
  });
});

describe("int32 bias fake-quant", () => {
  it("rounds b / (s_in · s_w) half to even and scales back, per channel, in float32", async () => {
    const g = new Graph();
    g.inputs.push({ name: "b", dtype: "float32", shape: [4] }, { name: "s", dtype: "float32", shape: [4] });
    g.initializers.set("z", tensor("int32", [], [0]));
    const spec = {
      qmin: -2147483648,
      qmax: 2147483647,
      dtype: "int32" as const,
      axis: -1,
      grad: "ste" as const,
      gradScale: 1,
      learnZeroPoint: false,
    };
    const y = emitFakeQuant(g, "b", "s", "z", spec, { name: "bq", shape: [4] });
    g.outputs.push({ name: y, dtype: "float32" });
    lowerFakeQuant(g);
    expect(g.nodes.map((n) => n.opType)).toEqual(["Div", "Round", "Mul"]);
    const s = Float32Array.of(1e-4, 3.7e-5, 2.5e-3, 0.01);
    const b = Float32Array.of(0.123456, -0.5, 2.5 * 2.5e-3, 0.015);
    const sess = await openSession(modelOf(g), { optimization: "disabled" });
    const out = (await run(sess, { b: tensor("float32", [4], b), s: tensor("float32", [4], s) }))[y]!
      .data as Float32Array;
    await sess.release();
    const want = Float32Array.from(b, (v, i) => Math.fround(roundHalfEven(Math.fround(v / s[i]!)) * s[i]!));
    expect(bits(out)).toEqual(bits(want));
    expect(out[2]).toBeCloseTo(2 * 2.5e-3, 9); // a tie at 2.5 went to 2
  });
});
