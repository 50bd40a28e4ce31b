import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { zooModel } from "../../src/nn/zoo.js";
import { decodeModel, encodeModel, loadModel } from "../../src/onnx/codec.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { CLI, DATA, MODELS } from "../helpers/paths.js";
import { qatCheckpoint, tempDir } from "./fixtures.js";

const qat = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!);
const DATA_FLAGS = ["--data", "mnist", "--data-dir", DATA, "--limit", "256", "--threads", "1"];

let dir: string;
let ckpt: string;
beforeAll(async () => {
  dir = tempDir();
  ckpt = await qatCheckpoint(dir, "mnist-cnn", "ort-cpu");
});

describe("qat export / qat verify", () => {
  it("exports, reports sizes, parity and latency as JSON, and the file verifies", () => {
    const out = join(dir, "ok.int8.onnx");
    const r = qat("export", ckpt, "--out", out, ...DATA_FLAGS, "--json");
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.written).toBe(true);
    expect(existsSync(out)).toBe(true);
    expect(j.parity.samples).toBe(256);
    expect(j.parity.passed).toBe(true);
    expect(j.sizes.int8_bytes).toBeLessThan(j.sizes.float_bytes);
    for (const m of ["float", "int8"])
      for (const b of ["batch1", "batch64"]) expect(j.latency_ms[m][b]).toBeGreaterThan(0);
    const v = qat("verify", out, ...DATA_FLAGS, "--json");
    expect(v.status, v.stderr).toBe(0);
    expect(lastJson(v.stdout).agreement).toBe(j.parity.agreement);
  });

  it("a model that drifted from its simulation fails verify with exit 1, naming the output", () => {
    const out = join(dir, "drift.int8.onnx");
    expect(qat("export", ckpt, "--out", out, ...DATA_FLAGS).status).toBe(0);
    const m = loadModel(out);
    const g = m.graph;
    const fc = g.nodes.find((n) => n.name === "fc")!;
    const dq = g.producers().get(fc.inputs[1]!)!;
    const w = g.initializers.get(dq.inputs[0]!)!;
    g.initializers.set(dq.inputs[0]!, {
      ...w,
      data: Int8Array.from(w.data as Int8Array, (v) => Math.max(-127, -v)),
    });
    const bad = join(dir, "drifted.int8.onnx");
    writeFileSync(bad, encodeModel(m));
    const r = qat("verify", bad, ...DATA_FLAGS);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/output 'logits': top-1 agreement/);
  });

  it("a file that is not a qat checkpoint fails with exit 2 and writes nothing", () => {
    const out = join(dir, "none1.onnx");
    const r = qat("export", join(MODELS, "iris-mlp.onnx"), "--out", out, ...DATA_FLAGS);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/not a qat checkpoint/);
    expect(r.stderr).toMatch(/qat train --qat/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
  });

  it("a float checkpoint fails with exit 2 saying it records no quantization", () => {
    const net = zooModel("mnist-cnn");
    const file = join(dir, "float-checkpoint.onnx");
    saveCheckpoint(file, { graph: net.eval, state: new Map(), meta: { position: { step: 1 } } });
    const out = join(dir, "none2.onnx");
    const r = qat("export", file, "--out", out, ...DATA_FLAGS);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/float checkpoint.*--qat/s);
    expect(existsSync(out)).toBe(false);
  });

  it("a checkpoint with a missing scale fails with exit 2 naming the tensor, and writes nothing", () => {
    const m = decodeModel(encodeModel(loadModel(ckpt)));
    expect(m.graph.initializers.delete("Relu_out0.scale")).toBe(true);
    const file = join(dir, "no-scale.onnx");
    writeFileSync(file, encodeModel(m));
    const out = join(dir, "none3.onnx");
    const r = qat("export", file, "--out", out, ...DATA_FLAGS);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      "scale 'Relu_out0.scale' of activation 'Relu_out0' (layer 'conv1') is missing",
    );
    expect(existsSync(out)).toBe(false);
  });

  it("bad usage exits 2: a missing run folder, an unknown target, --opset out of range", () => {
    expect(qat("export", join(dir, "nope"), "--out", join(dir, "x.onnx"), ...DATA_FLAGS).status).toBe(2);
    expect(qat("export", ckpt, "--out", join(dir, "x.onnx"), "--target", "tpu").status).toBe(2);
    const r = qat("export", ckpt, "--out", join(dir, "x.onnx"), "--opset", "11", ...DATA_FLAGS);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--opset 11/);
    expect(existsSync(join(dir, "x.onnx"))).toBe(false);
  });
});
