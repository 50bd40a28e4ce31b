import { describe, expect, it } from "vitest";
import { checkParity } from "../../src/export/parity.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, i64 } from "../../src/onnx/tensor.js";
import { synthDataset } from "./fixtures.js";

/**
 * logits = x (+ offset): a 4-class "model" whose outputs are the raw 0–255 features; with `map`, the same values as
 * a [batch, 4, 1] map (a regressor's or detector's layout, not a classifier's).
 */
function shifted(offset: number[] | undefined, map = false) {
  const g = new Graph();
  g.inputs = [{ name: "x", dtype: "float32", shape: ["batch", 4] }];
  const y = map ? "logits.flat" : "logits";
  if (offset) g.op("Add", ["x", g.constant("offset", f32([4], offset))], {}, { output: y });
  else g.op("Identity", ["x"], {}, { output: y });
  if (map) g.op("Unsqueeze", [y, g.constant("axes", i64([1], [2]))], {}, { output: "logits" });
  g.outputs = [{ name: "logits", dtype: "float32", shape: map ? ["batch", 4, 1] : ["batch", 4] }];
  return modelOf(g);
}

describe("parity check", () => {
  const ds = { ...synthDataset([4], 300, 5), numClasses: 4 };
  const x = new Float32Array(300 * 4);
  ds.fill(
    Array.from({ length: 300 }, (_, i) => i),
    x,
    new BigInt64Array(300),
  );
  const step = (Math.max(...x) - Math.min(...x)) / 255;
  const argmax = (v: ArrayLike<number>, o: number) =>
    [0, 1, 2, 3].reduce((b, i) => (v[o + i]! > v[o + b]! ? i : b), 0);

  it("measures differences in 8-bit steps of the simulated output's range", async () => {
    const r = await checkParity(shifted([0, 0, 0.5 * step, 0]), shifted(undefined), { data: ds, threads: 1 });
    expect(r.outputs[0]!.step).toBe("range");
    expect(r.outputs[0]!.stepSize).toBeCloseTo(step, 6);
    expect(r.outputs[0]!.maxSteps).toBeCloseTo(0.5, 4);
    expect(r.outputs[0]!.withinOneStep).toBe(1);
    expect(r.passed).toBe(true);
  });

  it("fails below the thresholds and names the output that diverged", async () => {
    const r = await checkParity(shifted([0, 0, 0, 3 * step]), shifted(undefined), { data: ds, threads: 1 });
    const shiftedX = x.map((v, i) => (i % 4 === 3 ? v + 3 * step : v));
    let agree = 0;
    for (let s = 0; s < 300; s++) if (argmax(x, 4 * s) === argmax(shiftedX, 4 * s)) agree++;
    expect(r.agreement).toBeCloseTo(agree / 300, 10);
    expect(r.outputs[0]!.maxSteps).toBeCloseTo(3, 4);
    expect(r.outputs[0]!.withinOneStep).toBeCloseTo(0.75, 10);
    expect(r.passed).toBe(false);
    expect(r.failures.join("\n")).toMatch(/output 'logits': 75\.000% of values within one quantization step/);
  });

  it("asks top-1 agreement only of a [batch, classes] first output", async () => {
    const opts = { data: ds, threads: 1, thresholds: { agreement: 1 } };
    const cls = await checkParity(shifted([0, 0, 0, 3 * step]), shifted(undefined), opts);
    expect(cls.thresholds.agreement).toBe(1);
    expect(cls.agreement).toBeLessThan(1);
    expect(cls.failures.join("\n")).toMatch(/output 'logits': top-1 agreement/);
    const map = await checkParity(shifted([0, 0, 0, 3 * step], true), shifted(undefined, true), opts);
    expect(map.agreement).toBe(cls.agreement); // still measured and reported
    expect(map.thresholds.agreement).toBe(0);
    expect(map.failures.join("\n")).not.toMatch(/top-1 agreement/);
    expect(map.failures.join("\n")).toMatch(
      /output 'logits': 75\.000% of values within one quantization step/,
    );
  });
});
