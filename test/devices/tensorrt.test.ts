/**
 * `--runtime tensorrt`: the agent drives trtexec on the board. No GPU here, so the board's trtexec is a stand-in
 * (fake-trtexec.mjs, put on the local board's PATH) that implements trtexec's documented flags and file formats
 * with onnxruntime: the protocol, the argv, the input files, the exported outputs and the latency parsing are what
 * is tested. Real TensorRT on a real Jetson is not.
 */
import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  findTrtexec,
  parseTrtOutputs,
  parseTrtPerformance,
  trtBuildArgs,
  trtShapesSpec,
  trtVersion,
} from "../../devices/agent/trtexec.js";
import { buildTrtEngine, deployModel } from "../../devices/deploy.js";
import { DeviceError, RemoteError } from "../../devices/errors.js";
import { setupDevice } from "../../devices/setup.js";
import { shellQuote } from "../../devices/transport/channel.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { validateModel } from "../../devices/validate.js";
import { mnistTest, SHARED } from "./helpers.js";
import { saturatingNet, tensorRtNet } from "./models.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "qat-tensorrt-"));
const bin = join(dir, "bin");
const home = join(dir, "home");
const log = join(dir, "trtexec.log");
const PATH = `${bin}:${process.env.PATH}`;

/** The board: this machine with the stand-in trtexec on PATH (and FAKE_TRTEXEC_* for the stand-in). */
function board(env: Record<string, string> = {}, label = "jetson-stand-in"): LocalTransport {
  return new LocalTransport({ home, label, env: { PATH, FAKE_TRTEXEC_LOG: log, ...env } });
}

/** The trtexec calls since the last look. */
let seen = 0;
function calls(): string[][] {
  const all = existsSync(log)
    ? readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as string[])
    : [];
  const fresh = all.slice(seen);
  seen = all.length;
  return fresh;
}

beforeAll(async () => {
  mkdirSync(bin);
  const fake = join(ROOT, "test/devices/fake-trtexec.mjs");
  writeFileSync(
    join(bin, "trtexec"),
    `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(fake)} "$@"\n`,
  );
  chmodSync(join(bin, "trtexec"), 0o755);
  await setupDevice(board());
}, 300_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("trtexec's formats", () => {
  it("reads the version banner, the performance summary and --exportOutput (nan/inf included)", () => {
    expect(trtVersion("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --help")).toBe("8.6.1");
    expect(trtVersion("[TensorRT v100300]")).toBe("10.3.0");
    expect(trtVersion("[TensorRT v8201]")).toBe("8.2.1");
    expect(trtVersion("no banner")).toBeNull();
    const perf = parseTrtPerformance(
      [
        "[11/24/2026-18:31:21] [I] === Performance summary ===",
        "[11/24/2026-18:31:21] [I] Throughput: 1234.5 qps",
        "[11/24/2026-18:31:21] [I] Latency: min = 0.5 ms, max = 2.25 ms, mean = 0.8 ms, median = 0.75 ms, percentile(90%) = 1 ms, percentile(95%) = 1.5 ms, percentile(99%) = 2 ms",
        "[11/24/2026-18:31:21] [I] GPU Compute Time: min = 0.3 ms, max = 1e+00 ms, mean = 0.4 ms, median = 0.35 ms, percentile(99%) = 0.9 ms",
      ].join("\n"),
    );
    expect(perf.latency).toEqual({
      min: 0.5,
      max: 2.25,
      mean: 0.8,
      median: 0.75,
      percentiles: { "90": 1, "95": 1.5, "99": 2 },
    });
    expect(perf.gpuCompute?.median).toBe(0.35);
    expect(perf.gpuCompute?.max).toBe(1);
    expect(perf.throughput).toBe(1234.5);
    expect(parseTrtPerformance("no summary").latency).toBeUndefined();
    const out = parseTrtOutputs(
      '[\n  { "name" : "logits"\n  , "dimensions" : "1x4"\n  , "values" : [ 1.5, nan, -inf, 1e-05 ]\n  }\n' +
        ', { "name" : "b"\n  , "dimensions" : "2"\n  , "values" : [ inf, -nan ]\n  }\n]\n',
    );
    expect(out.map((o) => [o.name, o.dims])).toEqual([
      ["logits", [1, 4]],
      ["b", [2]],
    ]);
    expect(Array.from(out[0]!.values)).toEqual([
      1.5,
      Number.NaN,
      Number.NEGATIVE_INFINITY,
      Math.fround(1e-5),
    ]);
    expect(out[1]!.values[0]).toBe(Number.POSITIVE_INFINITY);
    expect(() => parseTrtOutputs('[{ "name": "x", "dimensions": "2x2", "values": [1] }]')).toThrow(
      /2x2 with 1 values/,
    );
  });

  it("builds the argv for each TensorRT generation, quoting input names trtexec would split", () => {
    expect(
      trtShapesSpec([
        { name: "input:0", dims: [8, 1, 28, 28] },
        { name: "y", dims: [8] },
      ]),
    ).toBe("'input:0':8x1x28x28,y:8");
    const shapes = "x:4x3";
    expect(trtBuildArgs("m.onnx", "e.plan", { version: "10.3.0", shapes, int8: true })).toEqual([
      "--onnx=m.onnx",
      "--saveEngine=e.plan",
      "--int8",
      "--shapes=x:4x3",
      "--skipInference",
    ]);
    expect(trtBuildArgs("m.onnx", "e.plan", { version: "8.5.2", shapes: null, int8: true }).slice(2)).toEqual(
      ["--int8", "--buildOnly"],
    );
    // TensorRT 11 builds strongly typed networks: no --int8 builder flag; a float model never gets --int8
    expect(
      trtBuildArgs("m.onnx", "e.plan", { version: "11.1.0", shapes: null, int8: true }).slice(2),
    ).toEqual(["--skipInference"]);
    expect(
      trtBuildArgs("m.onnx", "e.plan", { version: "8.6.1", shapes: null, int8: false }).slice(2),
    ).toEqual(["--skipInference"]);
  });

  it("finds trtexec on PATH, and says where it looked when it is not there", () => {
    expect(findTrtexec(undefined, { PATH })).toBe(join(bin, "trtexec"));
    expect(findTrtexec("trtexec", { PATH })).toBe(join(bin, "trtexec"));
    expect(() => findTrtexec(undefined, { PATH: "/nonexistent" })).toThrow(
      /trtexec is not on the board \(looked for \/usr\/src\/tensorrt\/bin\/trtexec and trtexec on PATH\)/,
    );
    expect(() => findTrtexec(join(dir, "nope"), { PATH })).toThrow(/is not on the board/);
  });
});

describe("validate --runtime tensorrt through the board's trtexec", () => {
  const set = mnistTest(20);

  it("builds an int8 engine once, runs every batch through --loadInputs/--exportOutput, parses the latency", async () => {
    calls();
    const model = tensorRtNet();
    const r = await validateModel(model, set, board(), {
      runtime: "tensorrt",
      batchSize: 8,
      trtIterations: 3,
    });
    expect(r.runtime).toBe("tensorrt");
    expect(r.samples).toBe(20);
    expect(r.tensorrt).toMatchObject({ version: "10.3.0", trtexec: join(bin, "trtexec"), cached: false });
    expect(existsSync(r.tensorrt!.engine)).toBe(true);
    expect(r.tensorrt!.engine).toMatch(
      new RegExp(`^${home}/models/[0-9a-f]{64}/tensorrt/[0-9a-f]{16}\\.plan$`),
    );
    // the stand-in computes with onnxruntime; trtexec prints six significant digits
    expect(r.agreement).toBe(1);
    expect(r.output.maxAbs).toBeLessThanOrEqual(1e-5 * r.output.refMaxAbs);
    expect(r.latencyMs.p50).toBeGreaterThan(0);
    expect(r.batchLatencyMs.max).toBeGreaterThanOrEqual(r.batchLatencyMs.p50);
    expect(r.tensorrt!.gpuComputeMs!.p50).toBeGreaterThan(0);
    expect(r.peakRssBytes).toBeGreaterThan(10 << 20); // the trtexec processes, sampled from /proc
    const c = calls();
    expect(c[0]).toEqual(["--help"]);
    const build = c[1]!;
    expect(build[0]).toMatch(/^--onnx=.*\/models\/[0-9a-f]{64}\/model\.onnx$/);
    expect(build.slice(2)).toEqual(["--int8", "--shapes='input:0':8x1x28x28", "--skipInference"]);
    const runs = c.slice(2);
    expect(runs).toHaveLength(3); // 20 samples in batches of 8
    for (const a of runs) {
      expect(a[0]).toBe(`--loadEngine=${r.tensorrt!.engine}`);
      expect(a[1]).toMatch(new RegExp(`^--loadInputs='input:0':${home}/tmp/trt-\\d+-\\d+-\\d+-in0\\.bin$`));
      expect(a[2]).toMatch(/^--exportOutput=.*\/tmp\/trt-.*-out\.json$/);
      expect(a.slice(3)).toEqual([
        "--shapes='input:0':8x1x28x28",
        "--iterations=3",
        "--warmUp=0",
        "--duration=0",
      ]);
    }
    expect(readFileSync(log, "utf8")).not.toMatch(/ENGINE/);

    // the engine is kept beside the model: the next validation only runs it
    const again = await validateModel(model, set, board(), { runtime: "tensorrt", batchSize: 8 });
    expect(again.tensorrt!.cached).toBe(true);
    expect(again.tensorrt!.engine).toBe(r.tensorrt!.engine);
    const c2 = calls();
    expect(c2.filter((a) => a[0]!.startsWith("--onnx="))).toEqual([]);
    expect(c2.at(-1)).toContain("--iterations=10");
  });

  it("a fixed-batch model gets no --shapes; TensorRT 8.5 gets --buildOnly", async () => {
    calls();
    const old = board({ FAKE_TRTEXEC_VERSION: "8501" });
    const r = await validateModel(tensorRtNet(4), mnistTest(8), old, { runtime: "tensorrt" });
    expect(r.tensorrt!.version).toBe("8.5.1");
    expect(r.batchSize).toBe(4);
    expect(r.agreement).toBe(1);
    const [help, build, ...runs] = calls();
    expect(help).toEqual(["--help"]);
    expect(build!.slice(2)).toEqual(["--int8", "--buildOnly"]);
    for (const a of runs) expect(a.some((x) => x.startsWith("--shapes"))).toBe(false);
  });

  it("a missing trtexec, and an engine trtexec rejects, fail with what went wrong", async () => {
    const nowhere = new LocalTransport({ home, label: "no-trt", env: { PATH: "/usr/bin:/bin" } });
    const err = await validateModel(tensorRtNet(), mnistTest(4), nowhere, {
      runtime: "tensorrt",
      batchSize: 4,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).code).toBe("trtexec-missing");
    expect((err as Error).message).toMatch(
      /no-trt: evaluate\.open: trtexec is not on the board \(looked for/,
    );
    // engines are per TensorRT version: 8.6 does not reuse the 10.3 engine built above, it builds its own
    const other = board({ FAKE_TRTEXEC_VERSION: "8601" });
    const r = await validateModel(tensorRtNet(), mnistTest(4), other, { runtime: "tensorrt", batchSize: 8 });
    expect(r.tensorrt!.version).toBe("8.6.1");
    expect(r.tensorrt!.cached).toBe(false);
    // a damaged engine: trtexec's error line comes back with the run
    writeFileSync(r.tensorrt!.engine, "not an engine\n");
    const broken = await validateModel(tensorRtNet(), mnistTest(4), other, {
      runtime: "tensorrt",
      batchSize: 8,
    }).catch((e: unknown) => e);
    expect((broken as RemoteError).code).toBe("run-failed");
    expect((broken as Error).message).toMatch(
      /trtexec failed \(exit 1\): .*\[E\] .*Magic tag does not match/,
    );
    rmSync(r.tensorrt!.engine);
  });

  it("refuses, before connecting, a model TensorRT cannot take as trained, and --layers", async () => {
    const err = await validateModel(saturatingNet(true), mnistTest(4), board(), {
      runtime: "tensorrt",
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as DeviceError).exitCode).toBe(2);
    expect((err as Error).message).toMatch(/breaks TensorRT's explicit-quantization rules/);
    expect((err as Error).message).toMatch(/node 'x\.quantize', tensor 'x\.zero_point': zero point is uint8/);
    expect((err as Error).message).toMatch(/weights use −128/);
    expect((err as Error).message).toMatch(/qat export --target tensorrt/);
    const layers = await validateModel(tensorRtNet(), mnistTest(4), board(), {
      runtime: "tensorrt",
      layers: "all",
    }).catch((e: unknown) => e);
    expect((layers as Error).message).toMatch(/--layers cannot run with --runtime tensorrt/);
  });

  it("deploy builds the engine on the board (and reuses it)", async () => {
    calls();
    const model = tensorRtNet(2);
    const t = board();
    await deployModel(model, t);
    const e = await buildTrtEngine(model, t);
    expect(e).toMatchObject({ batch: 2, version: "10.3.0", cached: false });
    expect(existsSync(e.engine)).toBe(true);
    expect(e.argv.slice(2)).toEqual(["--int8", "--skipInference"]);
    expect((await buildTrtEngine(model, t)).cached).toBe(true);
    await expect(buildTrtEngine(model, t, { batch: 3 })).rejects.toThrow(/fixes the batch at 2/);
    const undeployed = await buildTrtEngine(tensorRtNet(5), t).catch((e: unknown) => e);
    expect((undeployed as RemoteError).code).toBe("no-model");
  });
});

describe("the CLI", () => {
  const CLI = join(ROOT, "dist/toolchain/cli.js");
  const registry = join(dir, "devices.json");
  const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) =>
      execFile(
        process.execPath,
        [CLI, "--devices", registry, ...args],
        { env: { ...process.env, PATH, FAKE_TRTEXEC_LOG: log, QAT_DEVICES: "" }, maxBuffer: 64 << 20 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      ),
    );

  it("qat deploy/validate --runtime tensorrt, and says it is unverified on real Jetson hardware", async () => {
    expect((await run("device", "add", "jetson", "local", "--home", home)).code).toBe(0);
    // a board's device secret (and its trtexec) come from setup
    const setup = await run("device", "setup", "jetson");
    expect(setup.code, setup.stderr).toBe(0);
    const file = join(dir, "trt.onnx");
    writeFileSync(file, tensorRtNet());
    const d = await run(
      "deploy",
      file,
      "--device",
      "jetson",
      "--runtime",
      "tensorrt",
      "--batch",
      "10",
      "--json",
    );
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toMatch(
      /TensorRT 10\.3\.0 engine for batch 10: .*\.plan \(built in [\d.]+ s; unverified on real Jetson hardware\)/,
    );
    const v = await run(
      "validate",
      file,
      "--data",
      "mnist",
      "--data-dir",
      join(SHARED, "data"),
      "--device",
      "jetson",
      "--limit",
      "30",
      "--runtime",
      "tensorrt",
      "--trt-iterations",
      "2",
    );
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(
      /runtime: TensorRT through trtexec on the board \(unverified on real Jetson hardware\)/,
    );
    expect(v.stdout).toMatch(/jetson \(generic-x64, x64\): 30 samples, batch 32, TensorRT/);
    expect(v.stdout).toMatch(/tensorrt\s+TensorRT 10\.3\.0, engine .*\.plan \((built in|cached)/);
    expect(v.stdout).toMatch(/memory\s+peak [\d.]+ MiB \(trtexec RSS, sampled\)/);
    expect(v.stdout).toMatch(/simulation: not run — the model has no qat\.export metadata/);
    const help = await run("validate", "--help");
    expect(help.stdout.replace(/\s+/g, " ")).toMatch(/UNVERIFIED on real Jetson hardware/);
    const bad = await run("validate", file, "--data", "mnist", "--trtexec", "/x");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--trtexec and --trt-iterations apply to --runtime tensorrt/);
  });
});
