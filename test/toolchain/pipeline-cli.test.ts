/**
 * The CLI is a thin shell: `qat train` resolves the same configuration as `train()` from the library for the same
 * inputs, and `qat calibrate` / `qat sensitivity` take a run trained from an imported model (`--from`).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { loadModel } from "../../src/onnx/codec.js";
import { trainConfig } from "../../src/pipeline/trainer.js";
import { CLI, DATA, MODELS } from "../helpers/paths.js";

const tmp = () => mkdtempSync(join(tmpdir(), "qat-pipeline-"));
const qat = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!);

describe("qat train and train() resolve one configuration", () => {
  test("a QAT run: the CLI's config.json is train()'s resolved config (QAT learning rate 0.005 included)", () => {
    const out = join(tmp(), "run");
    const r = qat([
      "train",
      "--qat",
      "--data-dir",
      DATA,
      "--max-steps",
      "2",
      "--eval-limit",
      "64",
      "--threads",
      "2",
      "--out",
      out,
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const cli = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    const lib = trainConfig({
      qat: { preset: "ort-cpu" },
      dataDir: DATA,
      maxSteps: 2,
      evalLimit: 64,
      threads: 2,
    });
    expect(cli).toEqual(JSON.parse(JSON.stringify(lib)));
    expect(lib.schedule).toEqual({ kind: "cosine", lr: 0.005, tMax: 0 });
    expect(lib.qat).toEqual({
      preset: "ort-cpu",
      keepFloat: [],
      weightBits: {},
      calibrationBatches: 32,
      freezeBnAfter: 0,
      observerSteps: 0,
    });
  });
});

describe("qat calibrate and qat sensitivity take an imported run", () => {
  test("iris-mlp trained with --from on a CSV: calibrate writes a QAT checkpoint, sensitivity a report", () => {
    const dir = tmp();
    // three separable classes of four features, as iris-mlp takes them
    const rows = ["f1,f2,f3,f4,label"];
    for (let i = 0; i < 90; i++) {
      const c = i % 3;
      const v = (k: number) => (c * 2 + ((i * 7 + k * 13) % 10) / 10).toFixed(2);
      rows.push(`${v(0)},${v(1)},${v(2)},${v(3)},${c}`);
    }
    const csv = join(dir, "iris.csv");
    writeFileSync(csv, `${rows.join("\n")}\n`);
    const run = join(dir, "run");
    const t = qat([
      "train",
      "--from",
      join(MODELS, "iris-mlp.onnx"),
      "--data",
      csv,
      "--max-steps",
      "3",
      "--threads",
      "1",
      "--out",
      run,
      "--json",
    ]);
    expect(t.status, t.stderr).toBe(0);

    const out = join(dir, "cal");
    const c = qat(["calibrate", run, "--batches", "1", "--threads", "1", "--out", out, "--json"]);
    expect(c.status, c.stderr).toBe(0);
    const r = lastJson(c.stdout);
    expect(r.points).toBeGreaterThan(0);
    expect(r.float_accuracy).toBeGreaterThanOrEqual(0);
    expect(r.ptq_accuracy).toBeGreaterThanOrEqual(0);
    const ck = JSON.parse(loadModel(join(out, "checkpoint.onnx")).metadata["qat.checkpoint"]!);
    expect(ck.calibrated_from).toBe(run);
    expect(ck.quant.placement.length).toBe(r.points);
    expect(existsSync(join(out, "model.onnx"))).toBe(true);

    const s = qat(["sensitivity", run, "--batches", "1", "--threads", "1", "--json"]);
    expect(s.status, s.stderr).toBe(0);
    expect(lastJson(s.stdout).layers.length).toBeGreaterThan(0);
    expect(existsSync(join(run, "sensitivity.json"))).toBe(true);

    const bad = qat(["calibrate", run, "--batches", "x"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--batches expects a whole number ≥ 1, got "x"/);
  });
});
