import { describe, expect, test } from "vitest";
import { runTorchScript, torchProblem } from "../../bench/torch/python.js";
import { ScheduleError, type ScheduleSpec, schedule } from "../../src/train/schedules.js";

describe("schedules follow torch.optim.lr_scheduler's formulas", () => {
  test("at chosen steps", () => {
    expect(schedule({ kind: "constant", lr: 0.1 })(123)).toBe(0.1);
    const st = schedule({ kind: "step", lr: 1, stepSize: 10, gamma: 0.5 });
    expect([st(0), st(9), st(10), st(25)]).toEqual([1, 1, 0.5, 0.25]);
    const cos = schedule({ kind: "cosine", lr: 0.2, tMax: 100, etaMin: 0.02 });
    expect(cos(0)).toBeCloseTo(0.2, 12);
    expect(cos(50)).toBeCloseTo(0.11, 12); // halfway: the mean of 0.2 and 0.02
    expect(cos(100)).toBeCloseTo(0.02, 12);
    const warm = schedule({
      kind: "warmup",
      lr: 0.3,
      steps: 4,
      startFactor: 0.25,
      after: { kind: "step", lr: 0.3, stepSize: 2 },
    });
    expect([0, 1, 2, 3, 4, 5, 6].map(warm).map((v) => +v.toFixed(10))).toEqual([
      0.075, 0.13125, 0.1875, 0.24375, 0.3, 0.3, 0.03,
    ]);
    const oc = schedule({ kind: "one-cycle", maxLr: 1, totalSteps: 101, pctStart: 0.3 });
    // phase 1 ends at step 0.3·101 − 1 = 29.3: starts at max/25, reaches ≈max near there, ends at max/25/1e4
    expect(oc(0)).toBeCloseTo(0.04, 12);
    expect(oc(100)).toBeCloseTo(0.04 / 1e4, 12);
    expect(oc(29)).toBeGreaterThan(0.99);
    expect(() => oc(102)).toThrow(ScheduleError);
  });

  test("equal torch's schedulers step by step", () => {
    const problem = torchProblem();
    if (problem) throw new Error(`this test compares against PyTorch: ${problem}`);
    const specs: ScheduleSpec[] = [
      { kind: "constant", lr: 0.05 },
      { kind: "step", lr: 0.1, stepSize: 7, gamma: 0.3 },
      { kind: "cosine", lr: 0.1, tMax: 40, etaMin: 0.001 },
      { kind: "warmup", lr: 0.2, steps: 5 },
      { kind: "warmup", lr: 0.2, steps: 5, startFactor: 0.1, after: { kind: "cosine", lr: 0.2, tMax: 35 } },
      { kind: "one-cycle", maxLr: 0.5, totalSteps: 40 },
      {
        kind: "one-cycle",
        maxLr: 0.5,
        totalSteps: 40,
        pctStart: 0.25,
        anneal: "linear",
        divFactor: 10,
        finalDivFactor: 100,
      },
    ];
    const steps = 40;
    const torch = JSON.parse(
      runTorchScript("schedules.py", [], JSON.stringify({ specs, steps })),
    ) as number[][];
    specs.forEach((spec, i) => {
      const f = schedule(spec);
      for (let t = 0; t < steps; t++) {
        const want = torch[i]![t]!;
        expect(
          Math.abs(f(t) - want),
          `${spec.kind} #${i} at step ${t}: ${f(t)} vs torch ${want}`,
        ).toBeLessThan(1e-9 + 1e-7 * want);
      }
    });
  });
});
