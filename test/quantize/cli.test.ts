/** `qat quantize` from the command line: the --json contract and flag errors. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, DATA, MODELS } from "../helpers/paths.js";

const tmp = mkdtempSync(join(tmpdir(), "qat-quantize-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const MNIST8 = join(MODELS, "mnist-8.onnx");
const qat = (args: string[]) => spawnSync(process.execPath, [CLI, "quantize", ...args], { encoding: "utf8" });
const quick = ["--eval-samples", "200", "--calibration-samples", "128", "--threads", "2"];

describe("qat quantize", () => {
  it("--json prints the stages and final figures as one JSON object on the last stdout line", () => {
    const out = join(tmp, "json");
    const r = qat([
      MNIST8,
      "--data",
      join(DATA, "mnist"),
      "--max-drop",
      "1",
      "--out",
      out,
      ...quick,
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1); // human text goes to stderr with --json
    const j = JSON.parse(lines[0]!);
    expect(j.metric).toEqual({ name: "top-1 accuracy", unit: "%", labelled: true });
    expect(j.stages.map((s: { stage: string }) => s.stage)).toEqual(["reference", "ptq", "export"]);
    expect(j.withinBudget).toBe(true);
    expect(j.reference - j.final).toBeCloseTo(j.drop, 9);
    expect(j.files.model).toBe(join(out, "model.int8.onnx"));
    expect(j.report).toBe(join(out, "report.html"));
    expect(r.stderr).toMatch(/ptq: .* — 3 weights and 3 activations quantized \(ort-cpu\)/);
    expect(existsSync(j.report)).toBe(true);
  });

  it("flag errors exit 2 before any work", () => {
    const data = ["--data", join(DATA, "mnist")];
    for (const [args, message] of [
      [["--stages", "ptq,qat"], /--stages expects one of better-ptq, distill, mixed-precision, got "ptq"/],
      [["--resize", "--letterbox"], /give --resize or --letterbox, not both/],
      [["--max-drop", "-1"], /--max-drop expects a number ≥ 0, got "-1"/],
      [["--input-size", "28x28x3"], /--input-size expects H or HxW/],
    ] as const) {
      const out = join(tmp, "flags");
      const r = qat([MNIST8, ...data, ...args, "--out", out]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});
