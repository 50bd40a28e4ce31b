/**
 * The stages after PTQ on mnist-8 at W4A8 without labels (fidelity to float): a budget PTQ misses, reached by
 * mixed precision; and one that better PTQ and QAT by distillation are tried on, with mixed precision not allowed.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { quantizeModel } from "../../src/pipeline/quantize/index.js";
import { DATA, MODELS } from "../helpers/paths.js";

const tmp = mkdtempSync(join(tmpdir(), "qat-quantize-stages-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const base = {
  model: join(MODELS, "mnist-8.onnx"),
  data: join(DATA, "mnist"),
  labels: "none",
  preset: "w4a8",
  maxDrop: 0.4,
  evalSamples: 500,
  calibrationSamples: 256,
  adaroundIterations: 200,
  distillSteps: 100,
  threads: 2,
};

describe("quantizeModel stages after PTQ (mnist-8, W4A8, no labels)", () => {
  it("mixed precision raises the most sensitive layers until the budget is met, and says which", async () => {
    const r = await quantizeModel({ ...base, out: join(tmp, "mixed"), stages: ["mixed-precision"] });
    expect(r.stages.map((s) => [s.stage, s.status])).toEqual([
      ["reference", "done"],
      ["ptq", "done"],
      ["better-ptq", "skipped"],
      ["distill", "skipped"],
      ["mixed-precision", "done"],
      ["export", "done"],
    ]);
    const ptq = r.stages[1]!;
    expect(ptq.withinBudget).toBe(false);
    const mp = r.stages[4]!;
    const changes = mp.details.changes as { layer: string; from: number; to: number }[];
    expect(changes.length).toBeGreaterThan(0);
    for (const c of changes) expect(mp.changed).toContain(c.layer);
    expect(mp.withinBudget).toBe(true);
    expect(r.withinBudget).toBe(true);
    expect(r.exportedFrom).toBe("mixed-precision");
    // the raised layers are what the per-layer table of the exported model says
    const raised = new Map(changes.map((c) => [c.layer, c.to]));
    for (const l of r.layers) if (raised.get(l.layer) === 8) expect(l.weightBits).toBe(8);
  }, 600_000);

  it("better PTQ and QAT by distillation are tried in turn; the best model is exported when none is enough", async () => {
    const r = await quantizeModel({
      ...base,
      maxDrop: 0,
      out: join(tmp, "trained"),
      stages: ["better-ptq", "distill"],
    });
    const byStage = new Map(r.stages.map((s) => [s.stage, s]));
    expect(byStage.get("better-ptq")!.status).toBe("done");
    expect(byStage.get("better-ptq")!.changed).toMatch(/CLE .*AdaRound on 3 layer\(s\).*bias corrected/);
    expect(byStage.get("distill")!.status).toBe("done");
    expect(byStage.get("distill")!.changed).toMatch(/100 steps .*Plus214_Output_0: softmax/);
    expect(byStage.get("mixed-precision")!.status).toBe("skipped");
    // a top-1 agreement of 100% on 500 images is not reached at 4 bits by these short runs
    expect(r.withinBudget).toBe(false);
    const measured = r.stages
      .filter((s) => s.stage !== "reference" && s.metric !== null)
      .map((s) => s.metric!);
    expect(r.final).toBe(Math.max(...measured));
    expect(byStage.get(r.exportedFrom)!.metric).toBe(r.final);
    expect(existsSync(r.files.model)).toBe(true);
  }, 600_000);
});
