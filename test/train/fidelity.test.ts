import { describe, expect, it } from "vitest";
import {
  Cosine,
  FidelityMeter,
  type OutputMetric,
  type OutputValues,
  Sqnr,
  Top1Agreement,
} from "../../src/train/fidelity.js";

const t = (dims: number[], v: number[]): OutputValues => ({ dims, data: Float32Array.from(v) });

// ref rows (1,2) and (3,4); the candidate swaps the second row's values.
// Σref² = 1+4+9+16 = 30, Σ(ref−cand)² = 0+0+1+1 = 2 → SQNR = 10·log10(15) = 11.7609 dB, RMSE = √(2/4).
// cosine of all: dot 1+4+12+12 = 29, |ref|² = |cand|² = 30 → 29/30. Per sample: 1 and 24/25 → mean 0.98.
// top-1: row 0 both pick 1; row 1 ref picks 1 (4 > 3), cand picks 0 → 1/2.
const REF = t([2, 2], [1, 2, 3, 4]);
const CAND = t([2, 2], [1, 2, 4, 3]);

describe("fidelity metrics, hand-worked", () => {
  it("SQNR, cosine and top-1 agreement on a 2×2 classifier output", () => {
    const m = new FidelityMeter();
    m.add({ logits: REF }, { logits: CAND });
    const r = m.result().logits!;
    expect(r.sqnrDb).toBeCloseTo(11.760913, 5);
    expect(r.rmse).toBeCloseTo(Math.SQRT1_2, 6);
    expect(r.cosine).toBeCloseTo(29 / 30, 6);
    expect(r.meanSampleCosine).toBeCloseTo(0.98, 6);
    expect(r.top1Agreement).toBe(0.5);
    expect(r.rows).toBe(2);
  });

  it("accumulates over batches to the same figures as one batch", () => {
    const m = new FidelityMeter();
    m.add({ y: t([1, 2], [1, 2]) }, { y: t([1, 2], [1, 2]) });
    m.add({ y: t([1, 2], [3, 4]) }, { y: t([1, 2], [4, 3]) });
    const r = m.result().y!;
    expect(r.sqnrDb).toBeCloseTo(11.760913, 5);
    expect(r.cosine).toBeCloseTo(29 / 30, 6);
    expect(r.meanSampleCosine).toBeCloseTo(0.98, 6);
    expect(r.top1Agreement).toBe(0.5);
  });

  it("SQNR sees a scale error that cosine cannot: cand = ref/2 gives 10·log10(4) dB and cosine 1", () => {
    const s = new Sqnr();
    const c = new Cosine();
    s.add(t([1, 2], [2, 0]), t([1, 2], [1, 0]));
    c.add(t([1, 2], [2, 0]), t([1, 2], [1, 0]));
    expect(s.result().sqnrDb).toBeCloseTo(6.0206, 4);
    expect(c.result().cosine).toBeCloseTo(1, 9);
  });

  it("edge cases: exact output is +∞ dB, a zero candidate has cosine 0, nothing added is NaN", () => {
    const s = new Sqnr();
    s.add(REF, REF);
    expect(s.result().sqnrDb).toBe(Number.POSITIVE_INFINITY);
    const c = new Cosine();
    c.add(t([1, 2], [1, 1]), t([1, 2], [0, 0]));
    expect(c.result().cosine).toBe(0);
    expect(new Top1Agreement().result().top1Agreement).toBeNaN();
    expect(new Sqnr().result().sqnrDb).toBeNaN();
  });

  it("top-1 applies only to [N, C] outputs; a detector's [1, 896, 16] gets SQNR and cosine", () => {
    const m = new FidelityMeter();
    const n = 896 * 16;
    const ref = t(
      [1, 896, 16],
      Array.from({ length: n }, (_, i) => Math.sin(i)),
    );
    const cand = t(
      [1, 896, 16],
      Array.from({ length: n }, (_, i) => Math.sin(i) + 0.01),
    );
    m.add({ boxes: ref }, { boxes: cand });
    const r = m.result().boxes!;
    expect(Object.keys(r).sort()).toEqual(["cosine", "meanSampleCosine", "rmse", "sqnrDb"]);
    // Σsin² ≈ n/2, noise = n·1e-4 → ≈ 10·log10(5000) ≈ 37 dB
    expect(r.sqnrDb).toBeGreaterThan(36.5);
    expect(r.sqnrDb).toBeLessThan(37.5);
  });

  it("refuses mismatched shapes and a missing output, naming them", () => {
    const m = new FidelityMeter();
    expect(() => m.add({ y: REF }, { y: t([1, 4], [1, 2, 3, 4]) })).toThrow(/\[1, 4\].*\[2, 2\]/);
    expect(() => m.add({ y: REF }, { z: REF })).toThrow(/no output "y"/);
  });

  it("a plug-in metric (here: max absolute error) sits beside the defaults", () => {
    class MaxAbs implements OutputMetric<{ maxAbs: number }> {
      readonly name = "maxAbs";
      private worst = 0;
      accepts() {
        return true;
      }
      add(ref: OutputValues, cand: OutputValues) {
        for (let i = 0; i < ref.data.length; i++)
          this.worst = Math.max(this.worst, Math.abs(ref.data[i]! - cand.data[i]!));
      }
      result() {
        return { maxAbs: this.worst };
      }
    }
    const m = new FidelityMeter(() => [new Sqnr(), new MaxAbs()]);
    m.add({ y: REF }, { y: CAND });
    expect(m.result().y).toEqual({
      sqnrDb: expect.closeTo(11.760913, 5),
      rmse: expect.closeTo(Math.SQRT1_2, 6),
      maxAbs: 1,
    });
  });
});
