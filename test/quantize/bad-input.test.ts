/**
 * Bad input to `qat quantize`: each gets one clear message, exit 2, and nothing written (the --out folder is not
 * even created). A model with an op qat cannot train through is bad input only when distillation is asked for by
 * name (--stages): then it is refused the same way, naming the op and offering PTQ; with the default stages PTQ is
 * done and the QAT stage is skipped with the op and node named.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { quantizeModel } from "../../src/pipeline/quantize/index.js";
import { npyBytes } from "../data/fixtures.js";
import { CLI, MODELS } from "../helpers/paths.js";
import { writeEluModel, writeImages } from "./fixtures.js";

const tmp = mkdtempSync(join(tmpdir(), "qat-quantize-bad-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const MNIST8 = join(MODELS, "mnist-8.onnx");
const qat = (args: string[]) => spawnSync(process.execPath, [CLI, "quantize", ...args], { encoding: "utf8" });
const quick = ["--eval-samples", "64", "--calibration-samples", "64", "--threads", "2"];

/** Exit 2, one "qat: error:" line matching `message`, no stack trace, no output folder. */
function refused(args: string[], out: string, message: RegExp): void {
  const r = qat([...args, "--out", out, ...quick]);
  expect(r.status, r.stderr).toBe(2);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("qat: error:"));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(out)).toBe(false);
}

describe("qat quantize refuses bad input with exit 2 and writes nothing", () => {
  it("an empty image folder", () => {
    const empty = join(tmp, "empty");
    mkdirSync(empty);
    refused([MNIST8, "--data", empty], join(tmp, "out-empty"), /empty.*no PNG or JPEG images/);
  });

  it("a corrupt image, named", () => {
    const dir = writeImages(join(tmp, "corrupt"), 12, 28);
    // a PNG signature and the start of a header, then nothing: readable as a PNG name, not as an image
    const png = readFileSync(join(dir, "img0.png"));
    writeFileSync(join(dir, "broken.png"), png.subarray(0, 40));
    refused([MNIST8, "--data", dir], join(tmp, "out-corrupt"), /broken\.png/);
  });

  it("an input size the model cannot take", () => {
    const dir = writeImages(join(tmp, "size"), 12, 28);
    refused(
      [MNIST8, "--data", dir, "--input-size", "32x32"],
      join(tmp, "out-size"),
      /--input-size 32x32: model input 'Input3' takes \[1,28,28\].*cannot take another size/,
    );
  });

  it("labelled data of another size than the model's input", () => {
    const x = join(tmp, "x.npy");
    const y = join(tmp, "y.npy");
    writeFileSync(x, npyBytes("|u1", [10, 3, 8, 8], new Uint8Array(10 * 3 * 64)));
    writeFileSync(
      y,
      npyBytes(
        "<i8",
        [10],
        Array.from({ length: 10 }, (_, i) => i),
      ),
    );
    refused(
      [MNIST8, "--data", x, "--labels", y],
      join(tmp, "out-npy"),
      /samples of \[3,8,8\] \(C,H,W\) but model input 'Input3' takes \[1,28,28\]/,
    );
  });
});

describe("a model with an op qat cannot train through", () => {
  const model = writeEluModel(join(tmp, "elu-net.onnx"));
  const images = writeImages(join(tmp, "elu-images"), 30, 24, 5);

  it("asked to distill by name: exit 2 before any work, the op and node named, PTQ offered", () => {
    refused(
      [model, "--data", images, "--stages", "distill"],
      join(tmp, "elu-asked"),
      /QAT by distillation was asked for, but qat cannot train through Elu \('elu1'\).*post-training: --stages better-ptq,mixed-precision/,
    );
    refused(
      [model, "--data", images, "--stages", "better-ptq,distill"],
      join(tmp, "elu-asked-2"),
      /post-training: --stages better-ptq \(/,
    );
  });

  it("default stages: quantized post-training (the layer before the op too); QAT skipped naming the op and node", async () => {
    const r = await quantizeModel({
      model,
      data: images,
      out: join(tmp, "elu-out"),
      maxDrop: 0, // cosine of a quantized map is never exactly 1: every stage allowed is tried
      evalSamples: 64,
      calibrationSamples: 64,
      adaroundIterations: 20,
      threads: 2,
    });
    expect(r.metric.labelled).toBe(false);
    expect(r.warnings.join(" ")).toMatch(/cannot train through Elu \('elu1'\)/);
    const distill = r.stages.find((s) => s.stage === "distill")!;
    expect(distill.status).toBe("skipped");
    expect(distill.changed).toMatch(/Elu \('elu1'\)/);
    const ptq = r.stages.find((s) => s.stage === "ptq")!;
    expect(ptq.changed).toMatch(/^3 weights/); // conv1 sits behind Elu (frozen for training) and is quantized
    expect(r.stages.find((s) => s.stage === "better-ptq")!.status).not.toBe("skipped");
    expect(r.withinBudget).toBe(false);
    expect(existsSync(r.files.model)).toBe(true); // the best model is kept
  }, 300_000);

  it("the CLI exits 1 on the unreachable budget with a clear message, the best model written", () => {
    const out = join(tmp, "elu-cli");
    const r = qat([
      model,
      "--data",
      images,
      "--max-drop",
      "0",
      "--adaround-iterations",
      "20",
      "--out",
      out,
      ...quick,
      "--json",
    ]);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/qat: error: the budget of 0 pt was not reached: the best model \(stage [a-z-]+\)/);
    expect(r.stderr).toMatch(/warning: qat cannot train through Elu/);
    const json = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(json.withinBudget).toBe(false);
    for (const f of ["model.int8.onnx", "stages.json", "report.html", "checkpoint.onnx"])
      expect(existsSync(join(out, f))).toBe(true);
  });
});
