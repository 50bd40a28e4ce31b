import { describe, expect, it } from "vitest";
import { fakeQuantize } from "../../src/quant/fake-quant.js";
import {
  EntropyObserver,
  Histogram,
  MovingAverageObserver,
  MseObserver,
  makeObserver,
  PercentileObserver,
} from "../../src/quant/observer.js";
import { intRange, preset } from "../../src/quant/qconfig.js";
import { qparamsFor, weightQParams } from "../../src/quant/qparams.js";
import { seeded } from "../helpers/random.js";

const r = seeded(3);
const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
/** 40 000 standard normal values and two far outliers (0.005 %, beyond the 99.99th percentile). */
const heavy = Float32Array.from({ length: 40000 }, (_, i) => (i % 20000 === 0 ? 60 + i / 1000 : normal()));

function quantMse(x: Float32Array, min: number, max: number, bits: number): number {
  const cfg = { ...preset("ort-cpu").default.activation, symmetric: true, signed: true, bits };
  const { qmin, qmax } = intRange(cfg);
  const p = qparamsFor({ min, max }, cfg);
  const y = fakeQuantize(x, [x.length], [p.scale], [p.zeroPoint], qmin, qmax);
  return x.reduce((a, v, i) => a + (v - y[i]!) ** 2, 0) / x.length;
}

describe("observers", () => {
  it("min-max and moving average follow their definitions", () => {
    const mm = makeObserver("minmax");
    mm.observe([1, -2, 3]);
    mm.observe([0.5, 7]);
    expect(mm.range(256, false)).toEqual({ min: -2, max: 7 });
    const ma = new MovingAverageObserver(0.1);
    ma.observe([-1, 1]);
    ma.observe([-3, 11]);
    const got = ma.range();
    expect(got.min).toBeCloseTo(-1 + 0.1 * (-3 + 1), 12);
    expect(got.max).toBeCloseTo(1 + 0.1 * (11 - 1), 12);
    expect(() => makeObserver("minmax").range(256, false)).toThrow(/seen no values/);
  });

  it("the histogram widens to take new values and keeps every count", () => {
    const h = new Histogram();
    h.add(Float32Array.from({ length: 1000 }, () => r()));
    h.add([-5, 10]);
    expect(h.lo).toBeLessThanOrEqual(-5);
    expect(h.hi).toBeGreaterThanOrEqual(10);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(1002);
    expect(h.quantile(0.5)).toBeGreaterThan(0.3);
    expect(h.quantile(0.5)).toBeLessThan(0.7);
  });

  it("percentile, entropy (8-bit) and MSE (4-bit) clip outliers that min-max keeps; MSE lowers the error", () => {
    const o = {
      percentile: new PercentileObserver(),
      mse: new MseObserver(),
      entropy: new EntropyObserver(),
    };
    for (const ob of Object.values(o)) ob.observe(heavy);
    const mm = makeObserver("minmax");
    mm.observe(heavy);
    const full = mm.range(256, true);
    expect(full.max).toBeGreaterThan(60);
    for (const [name, ob] of Object.entries(o)) {
      // at 8 bits two outliers in 40 000 are worth keeping for MSE; at 4 bits they are not
      const rr = ob.range(name === "mse" ? 16 : 256, true);
      expect(rr.max, name).toBeLessThan(full.max / 2);
      expect(rr.max, name).toBeGreaterThan(2); // still covers the bulk of a standard normal
      expect(rr.min, name).toBeCloseTo(-rr.max, 6);
    }
    const m = o.mse.range(16, true);
    expect(quantMse(heavy, m.min, m.max, 4)).toBeLessThan(quantMse(heavy, full.min, full.max, 4) / 2);
  });

  it("asymmetric ranges include zero exactly; symmetric ones have zero point 0", () => {
    const a = preset("ort-cpu").default.activation;
    const p = qparamsFor({ min: 0.3, max: 6 }, a);
    expect(p.zeroPoint).toBe(0);
    const q = qparamsFor({ min: -1.7, max: 6.2 }, a);
    expect(Number.isInteger(q.zeroPoint) && q.zeroPoint > 0 && q.zeroPoint < 255).toBe(true);
    // 0 is representable exactly
    expect(fakeQuantize(Float32Array.of(0), [1], [q.scale], [q.zeroPoint], 0, 255)[0]).toBe(0);
    const t = preset("tensorrt").default.activation;
    expect(qparamsFor({ min: -1.7, max: 6.2 }, t)).toEqual({ scale: Math.fround(6.2 / 127), zeroPoint: 0 });
  });

  it("per-channel weight scales: min-max maps each channel's largest magnitude to qmax; MSE never does worse", () => {
    const dims = [4, 2, 3, 3];
    const w = Float32Array.from({ length: 72 }, (_, i) => normal() * (1 + Math.floor(i / 18)));
    const cfg = preset("w4a8").default.weight;
    const mm = weightQParams(w, dims, { ...cfg, observer: "minmax" }, 0);
    const mse = weightQParams(w, dims, cfg, 0);
    const { qmin, qmax } = intRange(cfg);
    expect([qmin, qmax]).toEqual([-8, 7]);
    for (let c = 0; c < 4; c++) {
      const ch = w.subarray(c * 18, c * 18 + 18);
      const amax = Math.max(...Array.from(ch, Math.abs));
      expect(mm.scale[c]).toBeCloseTo(amax / 7, 6);
      const err = (s: number) => {
        const y = fakeQuantize(ch, [18], [s], [0], qmin, qmax);
        return ch.reduce((a, v, i) => a + (v - y[i]!) ** 2, 0);
      };
      expect(err(mse.scale[c]!)).toBeLessThanOrEqual(err(mm.scale[c]!));
    }
    expect(Array.from(mse.scale).some((s, c) => s < mm.scale[c]!)).toBe(true);
  });
});
