import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { encodeModel } from "../../src/onnx/codec.js";
import { CLI, DATA, MODELS } from "../helpers/paths.js";
import { handModel, randomF32 } from "./helpers.js";

const MNIST8 = join(MODELS, "mnist-8.onnx");
const tmp = () => mkdtempSync(join(tmpdir(), "qat-import-"));
const qat = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!);

describe("qat import / eval --from / train --from", () => {
  test("qat import prints the report, human and --json", () => {
    const human = qat(["import", MNIST8]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/batch {3}fixed at 1 in the file, made dynamic/);
    expect(human.stdout).toMatch(/Reshape 'Times212_reshape0': \[1, 256\] → \[-1, 256\]/);
    expect(human.stdout).toMatch(/every op can be trained through/);
    expect(human.stdout).toMatch(/quantized in the file: none \(a float model/);
    expect(human.stdout).toMatch(/bias {4}Add 'Plus214' folded into Gemm 'Times212'/);
    expect(human.stdout).toMatch(/parameters: 5,994 trainable in 6 tensors, 0 frozen/);
    const json = qat(["import", MNIST8, "--json", "--input-scale", "0.5"]);
    expect(json.status, json.stderr).toBe(0);
    const r = lastJson(json.stdout);
    expect(
      r.ops.map((o: { opType: string; count: number; trainable: boolean }) => [
        o.opType,
        o.count,
        o.trainable,
      ]),
    ).toEqual([
      ["Add", 3, true],
      ["Conv", 2, true],
      ["MaxPool", 2, true],
      ["Relu", 2, true],
      ["MatMul", 1, true],
      ["Reshape", 1, true],
    ]);
    expect(r.inputConvention).toEqual({ scale: 0.5, mean: [0], std: [1], layout: "nchw" });
    expect(r.params.trainableCount).toBe(5994);
    expect(r.qat).toBeUndefined();
  });

  test("qat import --qat lists the tensors QAT quantizes: weights per channel, activations at layer inputs", () => {
    const plan = qat(["import", MNIST8, "--qat", "--json"]);
    expect(plan.status, plan.stderr).toBe(0);
    expect(plan.stderr).toMatch(/quantized by --qat ort-cpu: 3 weights, 3 activations/);
    const q = lastJson(plan.stdout).qat;
    expect(q.preset).toBe("ort-cpu");
    expect(q.quantized.map((r: Record<string, unknown>) => [r.kind, r.tensor, r.dtype, r.axis])).toEqual([
      ["weight", "Parameter5", "int8", 0],
      ["weight", "Parameter87", "int8", 0],
      ["weight", "Parameter193_reshape1", "int8", 1],
      ["activation", "Input3", "uint8", -1],
      ["activation", "ReLU32_Output_0", "uint8", -1],
      ["activation", "ReLU114_Output_0", "uint8", -1],
    ]);
    const w4 = qat(["import", MNIST8, "--qat", "w4a8", "--json"]);
    expect(lastJson(w4.stdout).qat.quantized[0]).toMatchObject({ bits: 4, qmin: -8, qmax: 7 });
    const bad = qat(["import", MNIST8, "--qat", "int3"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/ort-cpu/);
  });

  test("qat eval --from reproduces mnist-8's 98.91%, as the file itself does", () => {
    const a = qat(["eval", "--from", MNIST8, "--data", "mnist", "--data-dir", DATA, "--json"]);
    expect(a.status, a.stderr).toBe(0);
    const b = qat(["eval", MNIST8, "--data", "mnist", "--data-dir", DATA, "--json", "--limit", "1000"]);
    expect(b.status, b.stderr).toBe(0);
    expect(lastJson(a.stdout).accuracy).toBeCloseTo(0.9891, 3);
    expect(qat(["eval", "--data", "mnist"]).status).toBe(2);
    expect(qat(["eval", MNIST8, "--data", "mnist", "--input-scale", "2"]).status).toBe(2);
  });

  test("qat train --from writes an ordinary run folder; accuracy stays; qat eval reads it", () => {
    const out = join(tmp(), "run");
    const args = [
      "--data",
      "mnist",
      "--data-dir",
      DATA,
      "--max-steps",
      "60",
      "--eval-limit",
      "2000",
      "--threads",
      "2",
    ];
    const r = qat(["train", "--from", MNIST8, ...args, "--out", out, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    for (const f of [
      "config.json",
      "metrics.jsonl",
      "checkpoint.onnx",
      "model.onnx",
      "summary.json",
      "import.json",
    ]) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(cfg.from).toBe(MNIST8);
    expect(cfg.optimizer).toEqual({ kind: "adam" });
    expect(cfg.schedule).toEqual({ kind: "constant", lr: 1e-4 });
    const result = lastJson(r.stdout);
    expect(result.steps).toBe(60);
    expect(result.test_accuracy).toBeGreaterThanOrEqual(0.98);
    const e = qat(["eval", out, "--data", "mnist", "--data-dir", DATA, "--json", "--limit", "2000"]);
    expect(e.status, e.stderr).toBe(0);
    expect(lastJson(e.stdout).accuracy).toBeCloseTo(result.test_accuracy, 6);
  });

  test("mnist-8: 1 epoch of QAT from the import, then the int8 export holds ≥ 98.8% and passes parity", {
    timeout: 900_000,
  }, () => {
    const out = join(tmp(), "qat");
    const data = ["--data", "mnist", "--data-dir", DATA, "--threads", "2"];
    const r = qat([
      "train",
      "--from",
      MNIST8,
      ...data,
      "--epochs",
      "1",
      "--qat",
      "ort-cpu",
      "--out",
      out,
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const trained = lastJson(r.stdout);
    const int8 = join(out, "model.int8.onnx"); // --out defaults to model.int8.onnx in the run folder
    const x = qat(["export", out, ...data, "--no-latency", "--json"]);
    expect(x.status, x.stderr).toBe(0);
    const p = lastJson(x.stdout).parity;
    console.log(
      `mnist-8 QAT: simulation ${(100 * trained.test_accuracy).toFixed(2)}%, int8 ${(100 * p.export_accuracy).toFixed(2)}%, agreement ${(100 * p.agreement).toFixed(3)}%`,
    );
    expect(p.passed).toBe(true);
    expect(p.export_accuracy).toBeGreaterThanOrEqual(0.988);
    expect(existsSync(int8)).toBe(true);
    expect(lastJson(x.stdout).out).toBe(int8);
  });

  test("errors name the op and exit 2: every weight behind an op without a gradient rule; input shape mismatch", () => {
    const dir = tmp();
    const blocked = join(dir, "blocked.onnx");
    writeFileSync(
      blocked,
      encodeModel(
        handModel(["n", 1, 28, 28], (g) => {
          const flat = g.op("Flatten", ["x"], { axis: 1 });
          const h = g.op("Gemm", [flat, g.constant("w", randomF32([784, 10], 1, 0.01))], {}, { name: "fc" });
          return g.op("Erf", [h], {}, { name: "squash" });
        }),
      ),
    );
    const r = qat([
      "train",
      "--from",
      blocked,
      "--data",
      "mnist",
      "--data-dir",
      DATA,
      "--out",
      join(dir, "run"),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/node 'squash' \(Erf\).*no weight can be trained/);
    expect(existsSync(join(dir, "run"))).toBe(false);
    const iris = qat([
      "train",
      "--from",
      join(MODELS, "iris-mlp.onnx"),
      "--data",
      "mnist",
      "--data-dir",
      DATA,
      "--out",
      join(dir, "r2"),
    ]);
    expect(iris.status).toBe(2);
    expect(iris.stderr).toMatch(/iris-mlp.onnx takes \[4\] inputs but dataset mnist has \[1,28,28\] samples/);
  });
});
