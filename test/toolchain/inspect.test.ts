import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/onnx/codec.js";
import { numel } from "../../src/onnx/tensor.js";
import { CLI, MODELS } from "../helpers/paths.js";

const qat = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });

describe("qat inspect", () => {
  it("reports squeezenet's 26 Conv nodes and its parameter count as JSON on the last line of stdout", () => {
    const file = join(MODELS, "squeezenet1.0-fp16.onnx");
    const r = qat("inspect", file, "--json");
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(j.ops.Conv).toBe(26);
    // independent count: the element counts of the float initializers
    let params = 0;
    for (const t of loadModel(file).graph.initializers.values())
      if (t.dtype.startsWith("float")) params += numel(t.dims);
    expect(j.parameters.elements).toBe(params);
    // the file holds the SqueezeNet 1.1 layout (conv1 is 64×3×3×3): 1,235,496, not SqueezeNet 1.0's 1,248,424
    expect(params).toBe(1_235_496);
    expect(j.untrainable).toEqual([]);
  });

  it("prints a readable table without --json", () => {
    const r = qat("inspect", join(MODELS, "mnist-8.onnx"));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Conv\s+2/);
    expect(r.stdout).toContain("CNTK");
  });

  it("a truncated file is one clear error with exit code 2 and no stack trace", () => {
    const dir = mkdtempSync(join(tmpdir(), "qat-inspect-"));
    const bad = join(dir, "cut.onnx");
    writeFileSync(bad, readFileSync(join(MODELS, "mnist-8.onnx")).subarray(0, 5000));
    const r = qat("inspect", bad);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("cut.onnx");
    expect(r.stderr).toMatch(/byte \d+/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("a missing file and an unknown command are usage errors (exit 2)", () => {
    expect(qat("inspect", "/nonexistent/model.onnx").status).toBe(2);
    expect(qat("no-such-command").status).toBe(2);
  });
});
