import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toFloat32 } from "../../src/onnx/tensor.js";
import { gatherReport, renderReport, writeReport } from "../../src/report/index.js";
import { loadCheckpoint } from "../../src/train/checkpoint.js";
import { CLI } from "../helpers/paths.js";
import { BOARD_SAMPLES, type Fixture, pipelineRun } from "./fixture.js";

const qat = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
const PIPELINE_CHARTS = [
  "loss",
  "accuracy",
  "weight-scales",
  "sensitivity",
  "stages",
  "per-class-local-board",
  "agreement-local-board",
  "output-diff-local-board",
  "latency-local-board",
  "ops",
];

let fx: Fixture;
beforeAll(async () => {
  fx = await pipelineRun();
}, 300_000);
afterAll(() => {
  if (fx) rmSync(fx.dir, { recursive: true, force: true });
});

/** References to anything outside the file: src/href/url() that are not in-page anchors or data: URIs. */
function externalRefs(html: string): string[] {
  const refs = [...html.matchAll(/\b(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']/gi)].map((m) => m[1]!);
  const urls = [...html.matchAll(/url\(\s*["']?([^"')]*)/gi)].map((m) => m[1]!);
  return [...refs, ...urls].filter((r) => !r.startsWith("#") && !r.startsWith("data:"));
}

describe("gathering a pipeline run folder", () => {
  it("reads every source: curves, scales, sensitivity, parity, the device report, the models", () => {
    const d = gatherReport(fx.run);
    expect(d.layout).toBe("pipeline");
    expect(d.missing).toEqual({});
    expect(d.float?.phase).toBe("float");
    expect(d.qat?.phase).toBe("qat");
    expect(d.qat?.qatPreset).toBe("ort-cpu");
    for (const r of [d.float!, d.qat!]) {
      expect(r.epochs).toHaveLength(1);
      expect(r.epochs[0]!.trainLoss).toBeGreaterThan(0);
      expect(r.summary?.test_accuracy).toBeGreaterThan(0.5);
    }
    // the scales are the checkpoint's initializers, as placed
    const ck = loadCheckpoint(join(fx.run, "qat", "checkpoint.onnx"));
    const placement = (ck.meta.quant as { placement: { tensor: string; scale: string }[] }).placement;
    expect(d.quant!.rows.map((r) => r.tensor)).toEqual(placement.map((p) => p.tensor));
    for (const [i, p] of placement.entries())
      expect(d.quant!.rows[i]!.scales).toEqual(Array.from(toFloat32(ck.graph.initializers.get(p.scale)!)));
    const conv1 = d.quant!.rows.find((r) => r.kind === "weight" && r.layer === "conv1")!;
    expect(conv1.scales).toHaveLength(8);
    expect(conv1.rangeMin).toBeLessThan(0);
    expect(conv1.rangeMax).toBeGreaterThan(0);
    expect(conv1.sensitivity).toBeDefined();
    expect(d.quant!.rows.filter((r) => r.kind === "activation").every((r) => !r.sensitivity)).toBe(true);
    expect(d.export?.parity.samples).toBe(256);
    expect(d.export?.parity.passed).toBe(true);
    expect(d.export?.summary.ops.DequantizeLinear).toBeGreaterThan(0);
    expect(d.floatModel?.label).toBe("float model");
    const b = d.device!.boards[0]!;
    expect(b.device).toBe("local-board");
    expect(b.samples).toBe(BOARD_SAMPLES);
    expect(b.perClass.reduce((a, c) => a + c.count, 0)).toBe(BOARD_SAMPLES);
    expect(b.latencyMs.p50).toBeGreaterThan(0);
  });

  it("writes one self-contained page with every chart, atomically, at <run>/report.html", async () => {
    const r = await writeReport(fx.run);
    expect(r.out).toBe(join(fx.run, "report.html"));
    expect(r.charts).toEqual(PIPELINE_CHARTS);
    const html = readFileSync(r.out, "utf8");
    expect(externalRefs(html)).toEqual([]);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link[^>]+stylesheet/i);
    expect(html).not.toMatch(/@import/i);
    expect(html).not.toMatch(/Not available/);
    // one page of several SVGs: element ids must not collide
    const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of PIPELINE_CHARTS) {
      const fig = new RegExp(
        `data-chart="${id}"><figcaption class="title">[^<]+</figcaption><svg[^>]*>([\\s\\S]*?)</svg>`,
      ).exec(html);
      expect(fig, id).not.toBeNull();
      expect(fig![1]!.match(/<(path|rect|circle|polyline)\b/g)!.length, id).toBeGreaterThan(1);
    }
    // real numbers from the run, not placeholders
    const d = gatherReport(fx.run);
    expect(html).toContain(`${(100 * d.export!.parity.export_accuracy).toFixed(2)}%`);
    expect(html).toContain(d.device!.boards[0]!.latencyMs.p50.toFixed(3));
  });

  it("--out writes elsewhere and --json prints where, with the chart ids", () => {
    const out = join(fx.dir, "elsewhere", "r.html");
    const r = qat("report", fx.run, "--out", out, "--json");
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(j.out).toBe(out);
    expect(j.charts).toEqual(PIPELINE_CHARTS);
    expect(existsSync(out)).toBe(true);
  });
});

describe("other layouts: sections without data say what to run", () => {
  it("a QAT run folder alone finds its float run through --init; no export or board yet", async () => {
    const d = gatherReport(join(fx.run, "qat"));
    expect(d.layout).toBe("run");
    expect(d.float?.dir).toBe(join(fx.run, "float"));
    expect(d.quant?.rows.length).toBeGreaterThan(0);
    expect(d.missing.export).toMatch(/qat export/);
    expect(d.missing.device).toMatch(/qat validate .* --json/);
    const html = await renderReport(d);
    expect(html).toMatch(/Not available \(run &#39;qat export/);
    expect(html).toContain('data-chart="loss"');
    expect(html).not.toContain('data-chart="stages"');
  });

  it("a float run folder: curves and the model; quantization, export and board not available", async () => {
    const out = join(fx.dir, "float-report.html");
    const r = qat("report", join(fx.run, "float"), "--out", out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/quant: not available \(run 'qat train --init .*--qat ort-cpu' to get it\)/);
    expect(r.stdout).toMatch(
      /sensitivity: not available \(run 'qat sensitivity .*' \(it writes sensitivity.json into that run\)/,
    );
    const html = readFileSync(out, "utf8");
    expect(html).toContain('data-chart="accuracy"');
    expect(html).toContain('data-chart="ops"');
    expect(html).not.toContain('data-chart="weight-scales"');
    expect(html.match(/class="na"/g)!.length).toBeGreaterThanOrEqual(4);
    // with its sensitivity.json beside it, the float run's report draws the sensitivity
    const copy = join(fx.dir, "float-with-sensitivity");
    cpSync(join(fx.run, "float"), copy, { recursive: true });
    cpSync(join(fx.run, "sensitivity.json"), join(copy, "sensitivity.json"));
    expect((await writeReport(copy)).charts).toEqual(["loss", "accuracy", "sensitivity", "ops"]);
  });

  it("per-run latencies and a difference histogram, when a device report has them, are drawn as histograms", async () => {
    const src = JSON.parse(readFileSync(join(fx.run, "device-report.json"), "utf8"));
    const rep = src.rows[0].report;
    rep.latencySamplesMs = [0.91, 0.95, 1.02, 1.04, 1.1, 1.3, 2.8];
    rep.output.histogram = { edges: [0, 0.001, 0.002], counts: [1990, 10] };
    const file = join(fx.dir, "with-histograms.json");
    writeFileSync(file, JSON.stringify(src));
    const html = await renderReport(gatherReport(fx.run, { deviceReport: file }));
    expect(html).toContain("7 runs. Batch time / batch size");
    expect(html).toContain("Histogram of |host − board|");
  });
});

describe("probed layers", () => {
  it("are compared in quantization steps when each has a step (their units differ)", async () => {
    const src = JSON.parse(readFileSync(join(fx.run, "device-report.json"), "utf8"));
    const rep = src.rows[0].report;
    rep.output = { ...rep.output, maxAbs: 0.02, meanAbs: 0.001, maxSteps: 1, changed: 0.01 };
    rep.layers = [
      { name: "Relu_out0", maxAbs: 0.0175, meanAbs: 0.0001, refMaxAbs: 4.4, maxSteps: 1, changed: 0.002 },
      { name: "Relu_1_out0", maxAbs: 0.056, meanAbs: 0.0003, refMaxAbs: 7.1, maxSteps: 2, changed: 0.004 },
    ];
    const file = join(fx.dir, "with-layers.json");
    writeFileSync(file, JSON.stringify(src));
    const html = await renderReport(gatherReport(fx.run, { deviceReport: file }));
    expect(html).toContain("max |Δ| (quantization steps)");
    expect(html).toContain("&#39;Relu_1_out0&#39;: 2.00 quantization steps at most, 0.40% of values differ.");
  });
});

describe("bad input: exit 2, the file named, no stack trace", () => {
  const bad = (args: string[], pattern: RegExp) => {
    const r = qat("report", ...args);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  };

  it("not a run folder", () => {
    bad([fx.dir.replace(/$/, "/agent-home")], /agent-home: not a run folder/);
    bad([join(fx.dir, "nowhere")], /nowhere: no such run folder/);
    // a folder of several runs (like runs/) is not one pipeline run
    const many = join(fx.dir, "many");
    cpSync(join(fx.run, "float"), join(many, "a"), { recursive: true });
    cpSync(join(fx.run, "float"), join(many, "b"), { recursive: true });
    bad([many], /many: holds 2 run folders \(a, b\), not one pipeline run: pass one of them/);
  });

  it("a device report that is missing, not JSON, or not a device report", () => {
    const copy = join(fx.dir, "copy");
    cpSync(join(fx.run, "float"), copy, { recursive: true });
    bad([copy, "--device-report", join(fx.dir, "none.json")], /none\.json: no such device report/);
    const notJson = join(fx.dir, "not.json");
    writeFileSync(notJson, "device: pi\n{ oops");
    bad([copy, "--device-report", notJson], /not\.json: the device report is not JSON/);
    const wrong = join(fx.dir, "wrong.json");
    const src = JSON.parse(readFileSync(join(fx.run, "device-report.json"), "utf8"));
    delete src.rows[0].report.latencyMs;
    writeFileSync(wrong, JSON.stringify(src));
    bad(
      [copy, "--device-report", wrong],
      /wrong\.json: not a device report: \$\.rows\[0\]\.report\.latencyMs is missing/,
    );
    expect(existsSync(join(copy, "report.html"))).toBe(false);
  });
});
