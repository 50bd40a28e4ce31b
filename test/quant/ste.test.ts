import { describe, expect, it } from "vitest";
import { appendBackward } from "../../src/autodiff/index.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { tensor } from "../../src/onnx/tensor.js";
import {
  emitFakeQuant,
  type FakeQuantSpec,
  lowerFakeQuant,
  roundHalfEven,
} from "../../src/quant/fake-quant.js";
import { openSession, run } from "../../src/runtime/session.js";
import "../../src/quant/ste.js";
import { seeded } from "../helpers/random.js";

const C = 3;
const K = 40;

interface Setup {
  /** Elements per channel row (x is [C, k]). */
  k: number;
  x: Float32Array;
  w: Float32Array;
  s: number[];
  z: number[];
  spec: FakeQuantSpec;
}

/** loss = Σ w·FakeQuantize(x); returns d loss / d x, s (and z when learned) from qat's backward graph. */
async function graphGrads(
  u: Setup,
): Promise<{ dx: Float32Array; ds: Float32Array; dz?: Float32Array; loss: number }> {
  const g = new Graph();
  const per = u.spec.axis >= 0;
  const sd = per ? [C] : [];
  const K = u.k;
  g.inputs.push({ name: "x", dtype: "float32", shape: [C, K] }, { name: "s", dtype: "float32", shape: sd });
  if (u.spec.learnZeroPoint) g.inputs.push({ name: "z", dtype: "float32", shape: sd });
  else g.initializers.set("z", tensor(u.spec.dtype, sd, per ? u.z : [u.z[0]!]));
  g.initializers.set("w", tensor("float32", [C, K], u.w));
  const y = emitFakeQuant(g, "x", "s", "z", u.spec, { name: "fq", shape: [C, K] });
  const loss = g.op("ReduceSum", [g.op("Mul", [y, "w"])], { keepdims: 0 }, { output: "loss" });
  const wrt = u.spec.learnZeroPoint ? ["x", "s", "z"] : u.spec.grad === "ste" ? ["x"] : ["x", "s"];
  const grads = appendBackward(g, loss, wrt);
  g.outputs.push({ name: loss, dtype: "float32" });
  for (const k of wrt) g.outputs.push({ name: grads.get(k)!, dtype: "float32" });
  lowerFakeQuant(g);
  const sess = await openSession(modelOf(g), { optimization: "disabled" });
  const feeds: Record<string, ReturnType<typeof tensor>> = {
    x: tensor("float32", [C, K], u.x),
    s: tensor("float32", sd, per ? u.s : [u.s[0]!]),
  };
  if (u.spec.learnZeroPoint) feeds.z = tensor("float32", sd, per ? u.z : [u.z[0]!]);
  const out = await run(sess, feeds);
  await sess.release();
  return {
    loss: (out[loss]!.data as Float32Array)[0]!,
    dx: out[grads.get("x")!]!.data as Float32Array,
    ds: (u.spec.grad === "ste" ? new Float32Array() : out[grads.get("s")!]!.data) as Float32Array,
    dz: u.spec.learnZeroPoint ? (out[grads.get("z")!]!.data as Float32Array) : undefined,
  };
}

/** The formulas, in float64 (v = x/s in float32 as the graph divides). */
function formulas(u: Setup) {
  const K = u.k;
  const per = u.spec.axis >= 0;
  const n = per ? C : 1;
  const dx = new Float64Array(C * K);
  const lsq = new Float64Array(n);
  const pact = new Float64Array(n);
  const dz = new Float64Array(n);
  const frozen = new Float64Array(n); // d loss / d s with every rounding held fixed: Σ w·(q − z)
  const insideV = new Float64Array(n); // Σ over unclipped elements of w·v
  const insideT = new Float64Array(n); // … of w·round(v)
  for (let c = 0; c < C; c++) {
    const j = per ? c : 0;
    const s = u.s[j]!;
    const z = u.z[j]!;
    for (let k = 0; k < K; k++) {
      const i = c * K + k;
      const w = u.w[i]!;
      const v = Math.fround(u.x[i]! / Math.fround(s));
      const t = roundHalfEven(v);
      const inside = t + z >= u.spec.qmin && t + z <= u.spec.qmax;
      const clipped = Math.min(Math.max(t, u.spec.qmin - z), u.spec.qmax - z);
      dx[i] = inside ? w : 0;
      lsq[j]! += w * (inside ? t - v : clipped);
      pact[j]! += w * (inside ? 0 : clipped);
      dz[j]! += w * (inside ? 0 : -s);
      frozen[j]! += w * clipped;
      if (inside) {
        insideV[j]! += w * v;
        insideT[j]! += w * t;
      }
    }
  }
  const g = u.spec.gradScale;
  return { dx, lsq: lsq.map((v) => v * g), pact, dz: dz.map((v) => v * g), frozen, insideV, insideT };
}

/** √Σ (w · per-element term)² of the scale gradient, per channel (LSQ or PACT as `u.spec.grad` says, times g). */
function termRms(u: Setup): number[] {
  const per = u.spec.axis >= 0;
  const acc = new Array<number>(per ? C : 1).fill(0);
  for (let i = 0; i < C * u.k; i++) {
    const j = per ? Math.floor(i / u.k) : 0;
    const v = Math.fround(u.x[i]! / Math.fround(u.s[j]!));
    const t = roundHalfEven(v);
    const z = u.z[j]!;
    const inside = t + z >= u.spec.qmin && t + z <= u.spec.qmax;
    const clipped = Math.min(Math.max(t, u.spec.qmin - z), u.spec.qmax - z);
    const term = inside ? (u.spec.grad === "pact" ? 0 : t - v) : clipped;
    acc[j]! += (u.w[i]! * term) ** 2;
  }
  const g = u.spec.grad === "pact" ? 1 : u.spec.gradScale;
  return acc.map((v) => g * Math.sqrt(v));
}

/** x such that x/s is at least 0.15 from a rounding boundary (and ~1/4 of the values clip). */
function setup(spec: FakeQuantSpec, seed: number, K = 40): Setup {
  const r = seeded(seed);
  const per = spec.axis >= 0;
  const s = per ? [0.0713, 0.0291, 0.1377] : [0.0531];
  const z = spec.dtype === "uint8" ? (per ? [100, 37, 180] : [77]) : per ? [0, 0, 0] : [0];
  const span = spec.qmax - spec.qmin;
  const x = new Float32Array(C * K);
  for (let i = 0; i < C * K; i++) {
    const j = per ? Math.floor(i / K) : 0;
    const code = spec.qmin - z[j]! - 0.3 * span + Math.floor(r() * 1.6 * span);
    x[i] = (code + 0.15 + 0.2 * r()) * s[j]!;
  }
  return { k: K, x, w: Float32Array.from({ length: C * K }, () => r() * 2 - 1), s, z, spec };
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol * (1 + Math.abs(b[i]!)));
};

const spec = (o: Partial<FakeQuantSpec>): FakeQuantSpec => ({
  qmin: -128,
  qmax: 127,
  dtype: "int8",
  axis: 0,
  grad: "lsq",
  gradScale: 0.05,
  learnZeroPoint: false,
  ...o,
});

describe("FakeQuantize gradients", () => {
  for (const sp of [
    spec({}),
    spec({ axis: -1, qmin: 0, qmax: 255, dtype: "uint8" }),
    spec({ qmin: -8, qmax: 7 }),
    // one fixed zero point per channel: the mask's bounds are a [C, 1] constant
    spec({ qmin: 0, qmax: 255, dtype: "uint8" }),
  ]) {
    it(`STE mask and LSQ scale gradient match the formulas (${sp.dtype} [${sp.qmin}, ${sp.qmax}], axis ${sp.axis})`, async () => {
      const u = setup(sp, 5);
      const got = await graphGrads(u);
      const f = formulas(u);
      close(got.dx, f.dx, 0);
      close(got.ds, f.lsq, 1e-5);
      // the mask is neither all-pass nor all-stop
      const passed = f.dx.filter((v, i) => v === u.w[i]).length;
      expect(passed).toBeGreaterThan(C * K * 0.3);
      expect(passed).toBeLessThan(C * K * 0.9);
    });
  }

  it("LSQ = g·(finite-difference d loss/d s with the rounding held) − g·Σ_inside w·v, and g scales it", async () => {
    const u = setup(spec({}), 7);
    const got = await graphGrads(u);
    const f = formulas(u);
    // central differences of the real forward (JS reference in float64 arithmetic), x away from rounding
    const h = 1e-7;
    for (let c = 0; c < C; c++) {
      const loss = (s: number) => {
        let l = 0;
        for (let k = 0; k < K; k++) {
          const i = c * K + k;
          const q = Math.min(u.spec.qmax, Math.max(u.spec.qmin, roundHalfEven(u.x[i]! / s)));
          l += u.w[i]! * q * s;
        }
        return l;
      };
      const fd = (loss(u.s[c]! + h) - loss(u.s[c]! - h)) / (2 * h);
      expect(Math.abs(fd - f.frozen[c]!)).toBeLessThan(1e-5 * (1 + Math.abs(fd)));
      expect(Math.abs(got.ds[c]! / u.spec.gradScale - (fd - f.insideV[c]!))).toBeLessThan(
        2e-4 * (1 + Math.abs(fd)),
      );
    }
    const twice = await graphGrads({ ...u, spec: { ...u.spec, gradScale: 0.1 } });
    close(
      twice.ds,
      Array.from(got.ds, (v) => 2 * v),
      1e-6,
    );
  });

  it("the STE dx is the finite-difference gradient of the clipped identity (round replaced by x)", async () => {
    const u = setup(spec({ axis: -1, qmin: 0, qmax: 255, dtype: "uint8" }), 9);
    const got = await graphGrads(u);
    const s = u.s[0]!;
    const z = u.z[0]!;
    const surrogate = (x: number) => (Math.min(Math.max(x / s + z, u.spec.qmin), u.spec.qmax) - z) * s;
    const h = 1e-4;
    let checked = 0;
    for (let i = 0; i < C * K; i++) {
      const v = u.x[i]! / s + z;
      if (Math.abs(v - u.spec.qmin) < 0.5 || Math.abs(v - u.spec.qmax) < 0.5) continue;
      const fd = (u.w[i]! * (surrogate(u.x[i]! + h) - surrogate(u.x[i]! - h))) / (2 * h);
      expect(Math.abs(got.dx[i]! - fd)).toBeLessThan(1e-4);
      checked++;
    }
    expect(checked).toBeGreaterThan(C * K * 0.8);
  });

  it("PACT: only clipped values move the range; equals the finite difference minus the rounding-held inside term", async () => {
    const u = setup(spec({ grad: "pact" }), 13);
    const got = await graphGrads(u);
    const f = formulas(u);
    close(got.ds, f.pact, 1e-5);
    close(
      got.ds,
      Array.from(f.frozen, (v, c) => v - f.insideT[c]!),
      1e-4,
    );
    close(got.dx, f.dx, 0);
  });

  it("learned zero point: dz = g·Σ_clipped −s·w, and the finite difference of the continuous forward agrees", async () => {
    const u = setup(spec({ axis: -1, qmin: 0, qmax: 255, dtype: "uint8", learnZeroPoint: true }), 17);
    // codes exactly at qmin/qmax sit on the clamp's kink in z: move them one code inwards
    for (let i = 0; i < C * K; i++) {
      const t = roundHalfEven(Math.fround(u.x[i]! / u.s[0]!)) + u.z[0]!;
      if (t === 0 || t === 255) u.x[i] = u.x[i]! + (t === 0 ? 1 : -1) * u.s[0]!;
    }
    const got = await graphGrads(u);
    const f = formulas(u);
    close(got.dz!, f.dz, 1e-5);
    close(got.ds, f.lsq, 1e-5);
    const s = u.s[0]!;
    const loss = (z: number) => {
      let l = 0;
      for (let i = 0; i < C * K; i++) {
        const t = roundHalfEven(Math.fround(u.x[i]! / s));
        l += u.w[i]! * (Math.min(Math.max(t + z, 0), 255) - z) * s;
      }
      return l;
    };
    const h = 1e-3;
    const fd = (loss(u.z[0]! + h) - loss(u.z[0]! - h)) / (2 * h);
    expect(Math.abs(got.dz![0]! / u.spec.gradScale - fd)).toBeLessThan(1e-3 * (1 + Math.abs(fd)));
  });
  it("LSQ and PACT from x̂ stay within float rounding of the formulas on a large tensor", async () => {
    // 3 × 200 000 elements, where float32 sums of x̂-sized terms could drift
    for (const sp of [
      spec({}),
      spec({ axis: -1, qmin: 0, qmax: 255, dtype: "uint8" }),
      spec({ grad: "pact" }),
    ]) {
      const u = setup(sp, 23, 200_000);
      const got = await graphGrads(u);
      const f = formulas(u);
      expect(got.dx.filter((v, i) => v !== f.dx[i]).length).toBe(0);
      const want = sp.grad === "pact" ? f.pact : f.lsq;
      // the tolerance scales with √Σ term², the size of a sum of N terms of random sign (≈ the value itself)
      const rms = termRms(u);
      for (let j = 0; j < want.length; j++) {
        expect(Math.abs(got.ds[j]! - want[j]!)).toBeLessThan(2e-4 * rms[j]!);
      }
    }
  });

  it("x exactly at a half-code boundary counts as inside at both ends (the closed interval documented in ste.ts)", async () => {
    // s a power of two: x / s and (k ± ½)·s are exact, so these are true ties of round-half-even
    const s = 0.0625;
    const row = [127.5, -128.5, 127.5 + 2 ** -16, -128.5 - 2 ** -16, 127.49, -128.49, 0.5, -0.5].map(
      (v) => v * s,
    );
    const u: Setup = {
      k: row.length,
      x: Float32Array.from({ length: C * row.length }, (_, i) => row[i % row.length]!),
      w: Float32Array.from({ length: C * row.length }, (_, i) => 1 + i),
      s: [s, s, s],
      z: [0, 0, 0],
      spec: spec({}),
    };
    const got = await graphGrads(u);
    const mask = Array.from(got.dx, (v, i) => (v === u.w[i] ? 1 : v === 0 ? 0 : Number.NaN));
    expect(mask).toEqual(Array.from({ length: C }, () => [1, 1, 0, 0, 1, 1, 1, 1]).flat());
  });

  it("int32 fake-quant (biases: no saturation in the lowered forward) passes dy through unmasked", async () => {
    const u = setup(spec({ axis: -1, qmin: -2147483648, qmax: 2147483647, dtype: "int32", grad: "ste" }), 29);
    const got = await graphGrads(u);
    close(got.dx, u.w, 0);
  });
});
