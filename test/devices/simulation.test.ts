/**
 * The fake-quant simulation in `qat validate`: found through the exported model's metadata (or given), run on the
 * host on the same samples, its accuracy and agreement with the board reported — or, when it cannot run, why not.
 * Also `--save` (the JSON report written atomically) and `--layers` through the CLI. On the local board.
 */
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setupDevice } from "../../devices/setup.js";
import { resolveSimulation } from "../../devices/simulation.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { validateModel } from "../../devices/validate.js";
import { openNamedDataset } from "../../src/data/named.js";
import { ExportError } from "../../src/export/errors.js";
import { EXPORT_META_KEY, exportToFile } from "../../src/export/export.js";
import { decodeModel, loadModel } from "../../src/onnx/codec.js";
import { qatCheckpoint } from "../export/fixtures.js";
import { MNIST8, mnistTest, SHARED } from "./helpers.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "qat-simulation-"));
const home = join(dir, "home");
const t = new LocalTransport({ home, label: "local" });
let ckpt: string;
const exported = join(dir, "mnist-cnn.int8.onnx");
let bytes: Uint8Array;

beforeAll(async () => {
  ckpt = await qatCheckpoint(dir, "mnist-cnn", "ort-cpu");
  const test = await openNamedDataset("mnist", { split: "test", dataDir: join(SHARED, "data") });
  const r = await exportToFile(ckpt, exported, { data: test, limit: 256, threads: 1 });
  expect(r.written).toBe(true);
  bytes = readFileSync(exported);
  await setupDevice(t);
}, 300_000);

afterAll(() => {
  t.abort();
  rmSync(dir, { recursive: true, force: true });
});

/** The exported model with its metadata edited. */
function withMeta(
  edit: (meta: { source: { checkpoint: string | null; run: string | null; step: number } }) => void,
) {
  const m = decodeModel(bytes);
  const meta = JSON.parse(m.metadata[EXPORT_META_KEY]!);
  edit(meta);
  m.metadata[EXPORT_META_KEY] = JSON.stringify(meta);
  return m;
}

describe("finding the simulation", () => {
  it("reads the checkpoint the export metadata records", () => {
    const s = resolveSimulation(decodeModel(bytes), { modelPath: exported });
    expect("model" in s).toBe(true);
    if (!("model" in s)) return;
    expect(s.source).toBe(ckpt);
    expect(s.step).toBe(10);
    // the eval graph of the checkpoint: Q/DQ in float, no training-only nodes
    expect(s.model.graph.nodes.some((n) => n.opType === "QuantizeLinear")).toBe(true);
    expect(s.model.graph.nodes.some((n) => n.domain === "ai.qat")).toBe(false);
  });

  it("says why not: no metadata, a checkpoint gone, a checkpoint trained further", () => {
    expect(resolveSimulation(loadModel(MNIST8))).toEqual({
      unavailable: expect.stringMatching(/no qat\.export metadata .*give --simulation/),
    });
    const gone = withMeta((m) => {
      m.source.checkpoint = join(dir, "moved-away.onnx");
      m.source.run = null;
    });
    expect(resolveSimulation(gone)).toEqual({
      unavailable: expect.stringMatching(/moved-away\.onnx\) is not readable here; give --simulation/),
    });
    const later = withMeta((m) => {
      m.source.step = 11;
    });
    expect(resolveSimulation(later)).toEqual({
      unavailable: expect.stringMatching(/is at step 10, but the model was exported from step 11/),
    });
    // given by hand, it runs anyway, with a note
    const given = resolveSimulation(later, { explicit: ckpt });
    expect(given).toMatchObject({
      source: ckpt,
      note: "the checkpoint is at step 10; the model was exported from step 11",
    });
    // a file that is not a QAT checkpoint, given by hand, is bad input naming the file
    expect(() => resolveSimulation(later, { explicit: MNIST8 })).toThrow(ExportError);
    expect(() => resolveSimulation(later, { explicit: MNIST8 })).toThrow(/mnist-8\.onnx: .*QAT checkpoint/);
  });
});

describe("validate with the simulation", () => {
  it("reports the simulation's accuracy and its agreement with board and host", async () => {
    const sim = resolveSimulation(decodeModel(bytes), { modelPath: exported });
    const set = mnistTest(200);
    const r = await validateModel(bytes, set, t, { simulation: sim, batchSize: 50 });
    expect(r.simulation?.available).toBe(true);
    if (!r.simulation?.available) return;
    expect(r.simulation.source).toBe(ckpt);
    // the exported int8 model matches its simulation (the export's parity check), here on the board as well
    expect(r.simulation.agreementWithHost).toBeGreaterThanOrEqual(0.99);
    expect(r.simulation.agreementWithBoard).toBeGreaterThanOrEqual(0.99);
    expect(Math.abs(r.simulation.accuracy - r.boardAccuracy)).toBeLessThanOrEqual(0.01);
    expect(r.simulation.drift).toBeCloseTo(r.simulation.accuracy - r.boardAccuracy, 12);
    const none = await validateModel(bytes, mnistTest(10), t, { simulation: { unavailable: "because" } });
    expect(none.simulation).toEqual({ available: false, reason: "because" });
    expect((await validateModel(bytes, mnistTest(10), t)).simulation).toBeUndefined();
  });
});

describe("the CLI: simulation, --save, --layers", () => {
  const CLI = join(ROOT, "dist/toolchain/cli.js");
  const registry = join(dir, "devices.json");
  const qat = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) =>
      execFile(
        process.execPath,
        [CLI, "--devices", registry, ...args],
        { cwd: dir, env: { ...process.env, QAT_DEVICES: "" }, maxBuffer: 64 << 20 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      ),
    );
  const data = ["--data", "mnist", "--data-dir", join(SHARED, "data"), "--device", "box", "--limit", "100"];

  it("prints host, board and simulation accuracy, and saves the JSON report atomically", async () => {
    expect((await qat("device", "add", "box", "local", "--home", home)).code).toBe(0);
    const save = join(dir, "reports", "box.json");
    const noFolder = await qat("validate", exported, ...data, "--save", save);
    expect(noFolder.code).toBe(2);
    expect(noFolder.stderr).toMatch(/--save .*box\.json: the folder .*reports does not exist/);
    mkdirSync(join(dir, "reports"));
    const v = await qat("validate", exported, ...data, "--save", save, "--json");
    expect(v.code, v.stderr).toBe(0);
    const json = JSON.parse(v.stdout.trim().split("\n").at(-1)!);
    expect(json.simulation).toMatchObject({ available: true, source: ckpt });
    expect(json.rows[0].report.simulation).toMatchObject({ available: true });
    expect(JSON.parse(readFileSync(save, "utf8"))).toEqual(json);
    expect(readdirSync(join(dir, "reports"))).toEqual(["box.json"]); // no temporary file left
    expect(v.stderr).toMatch(
      /simulation \(fake-quant, on the host\): \d+\.\d\d%, top-1 agreement with the host/,
    );
    expect(v.stderr).toMatch(/device\s+board\s+host acc\s+board acc\s+drift\s+agree\s+.*sim acc\s+sim agree/);
    expect(v.stderr).toMatch(/simulation \d+\.\d\d%; the board agrees with it on \d+\.\d\d% of samples/);
    expect(v.stderr).toContain(
      `saved the report to ${save}; render it with: qat report ${dir} --device-report ${save} --int8 ${exported}`,
    );

    const off = await qat("validate", exported, ...data, "--no-simulation", "--json");
    expect(JSON.parse(off.stdout.trim().split("\n").at(-1)!).simulation).toBeUndefined();
    const byHand = await qat("validate", exported, ...data, "--simulation", ckpt, "--json");
    expect(JSON.parse(byHand.stdout.trim().split("\n").at(-1)!).simulation.source).toBe(ckpt);
    const notQat = await qat("validate", exported, ...data, "--simulation", MNIST8);
    expect(notQat.code).toBe(2);
    expect(notQat.stderr).toMatch(/mnist-8\.onnx: .*QAT checkpoint/);

    // the checkpoint moved away: the report says the simulation did not run, and why
    renameSync(ckpt, `${ckpt}.moved`);
    try {
      const moved = await qat("validate", exported, ...data);
      expect(moved.code).toBe(0);
      expect(moved.stdout).toMatch(
        /simulation: not run — the QAT checkpoint the model was exported from \(.*\) is not readable here/,
      );
    } finally {
      renameSync(`${ckpt}.moved`, ckpt);
    }
  });

  it("--layers (all): the per-layer table and the first divergence, in text and JSON", async () => {
    const copy = join(dir, "copy.int8.onnx");
    copyFileSync(exported, copy);
    const v = await qat("validate", copy, ...data, "--layers");
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(
      /layers\s+host vs board per quantized tensor, in quantization steps \(diverged: more than 1 step\)/,
    );
    expect(v.stdout).toMatch(/#\s+tensor\s+layer\s+ops\s+max steps\s+changed/);
    expect(v.stdout).toMatch(
      /\d\s+Relu_out0\.fake_quant\.quantize_out0\s+conv1\s+Conv\+Relu\s+0\.00\s+0\.0%/,
    );
    expect(v.stdout).toMatch(/first divergence: none/);
    expect(v.stdout).toMatch(/probes\s+exposing the tensors left the final output unchanged/);
    // a node name stands for its layer's quantized output
    const j = await qat("validate", copy, ...data, "--layers", "conv1,Flatten_out0.quantize_out0", "--json");
    const rep = JSON.parse(j.stdout.trim().split("\n").at(-1)!).rows[0].report;
    expect(rep.firstDivergence).toBeNull();
    expect(rep.layers.map((l: { name: string; node: string }) => [l.name, l.node])).toEqual([
      ["Relu_out0.fake_quant.quantize_out0", "conv1"],
      ["Flatten_out0.quantize_out0", "Flatten"],
    ]);
    const bad = await qat("validate", copy, ...data, "--layers", "nope");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--layers: no node or value is named 'nope' \(quantized activations: /);
    const badT = await qat("validate", copy, ...data, "--layers", "--layer-threshold", "-1");
    expect(badT.code).toBe(2);
    expect(badT.stderr).toMatch(/--layer-threshold expects a number ≥ 0, got "-1"/);
  });
});
