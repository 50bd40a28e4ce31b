import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadModel } from "../../src/onnx/codec.js";
import { CLI, DATA } from "../helpers/paths.js";

const dir = mkdtempSync(join(tmpdir(), "qat-quant-"));
const common = [
  "--data-dir",
  DATA,
  "--batch-size",
  "32",
  "--threads",
  "2",
  "--eval-limit",
  "300",
  "--seed",
  "3",
];
const qat = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
const float = join(dir, "float");

const bits = (file: string) => {
  const out = new Map<string, string>();
  for (const [k, t] of loadModel(file).graph.initializers) {
    const d = t.data as Uint8Array;
    out.set(k, Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString("hex"));
  }
  return out;
};

describe("qat train --qat, qat calibrate, qat sensitivity", () => {
  beforeAll(() => {
    const r = qat(["train", ...common, "--max-steps", "60", "--out", float, "--json"]);
    expect(r.status, r.stderr).toBe(0);
  });

  it("QAT from a float run writes a Q/DQ model with scales and a placement table; a killed QAT run resumes bit for bit", async () => {
    const args = [
      "train",
      ...common,
      "--qat",
      "w4a8",
      "--init",
      float,
      "--max-steps",
      "40",
      "--checkpoint-every",
      "10",
    ];
    const a = qat([...args, "--out", join(dir, "qa"), "--json"]);
    expect(a.status, a.stderr).toBe(0);
    const m = loadModel(join(dir, "qa", "model.onnx"));
    const ops = new Set(m.graph.nodes.map((n) => n.opType));
    expect(ops.has("QuantizeLinear") && ops.has("DequantizeLinear")).toBe(true);
    expect([...m.graph.nodes].some((n) => n.domain === "ai.qat")).toBe(false);
    for (const k of [
      "conv1.weight.scale",
      "conv1.weight.zero_point",
      "x_normalized.scale",
      "fc.weight.scale",
    ])
      expect(m.graph.initializers.has(k), k).toBe(true);
    const ck = JSON.parse(loadModel(join(dir, "qa", "checkpoint.onnx")).metadata["qat.checkpoint"]!);
    expect(ck.quant.placement.length).toBe(6);
    expect(ck.quant.qconfig.preset).toBe("w4a8");
    // the scales were trained (differ from the calibrated start)
    const cal = qat([
      "calibrate",
      float,
      "--preset",
      "w4a8",
      ...common.slice(0, 2),
      "--eval-limit",
      "300",
      "--threads",
      "2",
      "--out",
      join(dir, "cal"),
      "--json",
    ]);
    expect(cal.status, cal.stderr).toBe(0);
    const calJson = JSON.parse(cal.stdout.trim().split("\n").at(-1)!);
    expect(calJson.ptq_accuracy).toBeGreaterThan(0.5);
    const trained = m.graph.initializers.get("conv1.weight.scale")!.data as Float32Array;
    const start = loadModel(join(dir, "cal", "model.onnx")).graph.initializers.get("conv1.weight.scale")!
      .data as Float32Array;
    expect(Array.from(trained)).not.toEqual(Array.from(start));

    const out = join(dir, "qb");
    const child = spawn(process.execPath, [CLI, ...args, "--out", out], { stdio: "ignore" });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on("exit", (_c, sig) => r(sig)));
    while (!existsSync(join(out, "checkpoint.onnx"))) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGKILL");
    await exited;
    if (!existsSync(join(out, "model.onnx"))) {
      const r = qat(["train", "--resume", out, "--json"]);
      expect(r.status, r.stderr).toBe(0);
    }
    expect(bits(join(out, "model.onnx"))).toEqual(bits(join(dir, "qa", "model.onnx")));
  });

  it("QAT starts from `qat calibrate`'s scales when --init is the calibrated folder", () => {
    const r = qat([
      "train",
      ...common,
      "--qat",
      "w4a8",
      "--init",
      join(dir, "cal"),
      "--max-steps",
      "1",
      "--lr",
      "0",
      "--out",
      join(dir, "qc"),
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const a = loadModel(join(dir, "qc", "model.onnx")).graph.initializers;
    const b = loadModel(join(dir, "cal", "model.onnx")).graph.initializers;
    for (const k of ["conv1.weight.scale", "Relu_out0.scale"]) {
      expect(Array.from(a.get(k)!.data as Float32Array), k).toEqual(
        Array.from(b.get(k)!.data as Float32Array),
      );
    }
  });

  it("resnet8 on MNIST: observers, then learned scales, then frozen BN statistics; the model has no BatchNormalization", () => {
    const r = qat([
      "train",
      ...common,
      "--model",
      "resnet8",
      "--batch-size",
      "16",
      "--qat",
      "--max-steps",
      "8",
      "--observer-steps",
      "2",
      "--freeze-bn-after",
      "5",
      "--calibration-batches",
      "2",
      "--eval-limit",
      "64",
      "--out",
      join(dir, "r8"),
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("step 2: observers frozen, scales learned from here");
    expect(r.stderr).toContain("step 5: BN statistics frozen and folded");
    const m = loadModel(join(dir, "r8", "model.onnx"));
    expect(m.graph.nodes.some((n) => n.opType === "BatchNormalization")).toBe(false);
    expect(m.graph.nodes.filter((n) => n.opType === "QuantizeLinear").length).toBeGreaterThan(20);
    // --init with a run folder and no --model trains that run's model
    const again = qat([
      "train",
      ...common,
      "--init",
      join(dir, "r8"),
      "--qat",
      "--max-steps",
      "1",
      "--calibration-batches",
      "1",
      "--eval-limit",
      "16",
      "--out",
      join(dir, "r8-again"),
    ]);
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "r8-again", "config.json"), "utf8")).model).toBe("resnet8");
    expect(again.stdout).toMatch(/after 1 step \(0 complete epochs\)/);
  });

  it("sensitivity prints a per-layer table and a proposal; bad input is one line and exit 2", () => {
    const r = qat([
      "sensitivity",
      float,
      "--preset",
      "w4a8",
      "--data-dir",
      DATA,
      "--eval-limit",
      "300",
      "--batches",
      "4",
      "--threads",
      "2",
      "--target",
      "1",
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(rep.layers.map((l: { layer: string }) => l.layer)).toEqual(["conv1", "conv2", "fc"]);
    // an unreachable target walks every layer: raised to 8-bit weights, most sensitive first
    expect(Object.values(rep.proposal.weightBits)).toEqual([8, 8, 8]);
    expect(rep.proposal.meetsTarget).toBe(false);
    expect(r.stderr).toMatch(/layer\s+bits\s+accuracy\s+delta/);
    // the same JSON lands in the run folder, where `qat report` looks for it
    expect(JSON.parse(readFileSync(join(float, "sensitivity.json"), "utf8"))).toEqual(rep);
    expect(r.stderr).toContain(`wrote ${join(float, "sensitivity.json")} (qat report reads it)`);
    const bad = qat(["train", ...common, "--qat", "int3", "--max-steps", "1", "--out", join(dir, "bad")]);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe(
      "qat: error: no qconfig preset 'int3'; available: ort-cpu, ort-cpu-x86-safe, tensorrt, w4a8",
    );
    expect(existsSync(join(dir, "bad"))).toBe(false);
    const keep = qat([
      "train",
      ...common,
      "--qat",
      "--keep-float",
      "conv7",
      "--max-steps",
      "1",
      "--out",
      join(dir, "bad2"),
    ]);
    expect(keep.status).toBe(2);
    expect(keep.stderr).toContain("layer 'conv7'");
    expect(readFileSync(join(dir, "qa", "config.json"), "utf8")).toContain('"preset": "w4a8"');
  });
});
