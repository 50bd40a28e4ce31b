/**
 * The package as a user gets it: `npm pack` (its `prepare` builds), `npm install <tarball>` into an empty folder with
 * onnxruntime-node's CUDA download skipped the way the README says, then the `qat` command and both entry points
 * (`qat`, `qat/devices`) used from that folder. Fails when the tarball misses a file the code loads at run time
 * (the board programs under dist/devices, a module an index re-exports) or an export the indexes list.
 */
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATA, MODELS, ROOT } from "./helpers/paths.js";

const dir = mkdtempSync(join(tmpdir(), "qat-package-"));
const app = join(dir, "app");

/**
 * The environment of a user's shell: none of the npm_* variables that `npm test` puts into ours (an inherited
 * npm_config_* would change what npm does in the other folder), no update notice, and the variable the README
 * gives for skipping onnxruntime-node's CUDA download. The device registry is a file of this test's own.
 */
const env: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
  ONNXRUNTIME_NODE_INSTALL: "skip",
  NO_UPDATE_NOTIFIER: "1",
  QAT_DEVICES: join(dir, "devices.json"),
};

function sh(cmd: string, args: string[], cwd: string, timeoutMs: number): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")} in ${cwd}: ${r.error.message}\n${r.stderr}`);
  return r;
}

const ok = (r: SpawnSyncReturns<string>, what: string) =>
  expect(r.status, `${what} exited ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);

/** The value names an index re-exports (types left out: they do not exist at run time). */
function valueExports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const names: string[] = [];
  for (const m of text.matchAll(/^export (type )?\{([^}]*)\} from/gm)) {
    if (m[1]) continue;
    for (const item of m[2]!.split(",").map((s) => s.trim())) {
      if (!item || item.startsWith("type ")) continue;
      names.push(item.split(/\s+as\s+/).at(-1)!);
    }
  }
  for (const m of text.matchAll(/^export \* as (\w+) from/gm)) names.push(m[1]!);
  expect(text, `${file} uses export * (list the names)`).not.toMatch(/^export \* from/m);
  return names.sort();
}

/** Smoke use of each group of both entry points, against the installed package; prints one JSON line. */
const SMOKE = `
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as qat from "qat";
import * as devices from "qat/devices";

const [run, dataDir, work] = process.argv.slice(2);
const out = {
  qat: Object.keys(qat).sort(),
  devices: Object.keys(devices).sort(),
};
// models and the ONNX layer
out.zoo = qat.zooNames();
out.params = qat.zooModel("mnist-cnn").params.length;
const model = qat.loadModel(join(run, "model.onnx"));
out.ops = qat.summarize(model).nodes;
out.roundTrip = qat.decodeModel(qat.encodeModel(model)).graph.nodes.length === model.graph.nodes.length;
// ONNX Runtime sessions
const session = await qat.openSession(model);
const logits = Object.values(await qat.runSession(session, { [model.graph.inputs[0].name]: qat.f32([2, 1, 28, 28], new Float32Array(2 * 784)) }))[0];
out.logits = logits.dims;
// data
const test = await qat.openNamedDataset("mnist", { split: "test", dataDir });
out.testSamples = test.length;
// training: evaluation of the run the CLI trained
const ev = await qat.evaluateFile({ model: run, data: "mnist", dataDir, limit: 500 });
out.evalAccuracy = ev.metrics.accuracy;
// quantization: post-training calibration into a run folder
const cal = await qat.calibrateRun({ run, dataDir, batches: 4, evalLimit: 500, out: join(work, "ptq") });
out.ptqAccuracy = cal.ptq_accuracy;
// export: the int8 model with its parity check
const int8 = join(work, "model.int8.onnx");
const ex = await qat.exportToFile(cal.out, int8, { data: test, limit: 500 });
out.exported = ex.written;
out.agreement = ex.parity.agreement;
// reports
const report = await qat.writeReport(run, { out: join(work, "report.html") });
out.reportBytes = report.bytes;
// devices: profiles, URIs, errors, and a real setup + validation on this machine as a board
out.emulated = devices.EMULATED_BOARDS;
out.boards = Object.keys(devices.BOARDS);
out.uri = devices.parseDeviceUri("ssh://pi@raspberrypi.local:2222");
try {
  devices.parseDeviceUri("ftp://nowhere");
} catch (e) {
  out.badUri = e instanceof devices.DeviceError && e.exitCode;
}
const t = new devices.LocalTransport({ home: join(work, "board") });
try {
  const setup = await devices.setupDevice(t);
  out.setupFiles = setup.filesSent;
  const n = 50;
  const inputs = new Float32Array(n * 784);
  const labels = new BigInt64Array(n);
  test.fill(Array.from({ length: n }, (_, i) => i), inputs, labels);
  const v = await devices.validateModel(readFileSync(int8), { inputs, sampleShape: [1, 28, 28], labels: Array.from(labels, Number) }, t);
  out.boardAgreement = v.agreement;
  out.boardSamples = v.samples;
} finally {
  t.abort();
}
console.log(JSON.stringify(out));
`;

let installed = false;

beforeAll(() => {
  // npm pack runs `prepare` (tsc): the tarball holds what the build of this tree emits
  const pack = sh("npm", ["pack", "--pack-destination", dir, "--json"], ROOT, 240_000);
  ok(pack, "npm pack");
  const { filename } = (
    JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as { filename: string }[]
  )[0]!;
  mkdirSync(app);
  writeFileSync(
    join(app, "package.json"),
    `${JSON.stringify({ name: "app", private: true, type: "module" })}\n`,
  );
  const install = sh(
    "npm",
    ["install", join(dir, filename), "--no-audit", "--no-fund", "--prefer-offline"],
    app,
    300_000,
  );
  ok(install, "npm install <tarball>");
  installed = true;
}, 600_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the packed package, installed into an empty folder", () => {
  it("ships the built library, the board programs and the CLI, and no sources, maps or .proto", () => {
    expect(installed).toBe(true);
    const pkg = join(app, "node_modules", "qat");
    const files = readdirSync(pkg, { recursive: true, encoding: "utf8" });
    for (const f of [
      "dist/src/index.js",
      "dist/src/index.d.ts",
      "dist/devices/index.js",
      "dist/devices/index.d.ts",
    ]) {
      expect(files).toContain(f);
    }
    expect(files).toContain("dist/toolchain/cli.js");
    expect(
      files.filter((f) => f.startsWith("dist/devices/agent/") && f.endsWith(".js")).length,
    ).toBeGreaterThan(5);
    expect(files.filter((f) => f.endsWith(".map") || (f.endsWith(".ts") && !f.endsWith(".d.ts")))).toEqual(
      [],
    );
    expect(
      files.filter((f) => f.startsWith("src/") || f.startsWith("dist/test") || f.endsWith(".proto")),
    ).toEqual([]);
    // onnxruntime-node's CPU build is there and its CUDA download was skipped
    const ort = join(app, "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", process.arch);
    expect(readdirSync(ort)).toContain("onnxruntime_binding.node");
    expect(existsSync(join(ort, "libonnxruntime_providers_cuda.so"))).toBe(false);
  });

  it("npx qat --help prints the usage and no npm warning, there and in this repository", () => {
    for (const cwd of [app, ROOT]) {
      const r = sh("npx", ["qat", "--help"], cwd, 60_000);
      ok(r, `npx qat --help in ${cwd}`);
      expect(r.stdout).toContain("Usage: qat");
      expect(r.stderr).not.toMatch(/npm warn|Unknown (project|user|env|cli) config/i);
    }
  });

  it("npx qat train trains mnist-cnn for an epoch and reports its accuracy", () => {
    const r = sh(
      "npx",
      ["qat", "train", "--model", "mnist-cnn", "--data", "mnist", "--data-dir", DATA, "--epochs", "1"].concat(
        ["--out", join(dir, "run"), "--json"],
      ),
      app,
      240_000,
    );
    ok(r, "npx qat train");
    const summary = JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!) as { test_accuracy: number };
    expect(summary.test_accuracy).toBeGreaterThan(0.9);
    expect(existsSync(join(dir, "run", "model.onnx"))).toBe(true);
  });

  it("exports exactly the names src/index.ts and devices/index.ts list, and each group works", () => {
    writeFileSync(join(app, "smoke.mjs"), SMOKE);
    mkdirSync(join(dir, "work"));
    const r = sh(process.execPath, ["smoke.mjs", join(dir, "run"), DATA, join(dir, "work")], app, 300_000);
    ok(r, "smoke.mjs");
    const out = JSON.parse(r.stdout.trimEnd().split("\n").at(-1)!);
    expect(out.qat).toEqual(valueExports("src/index.ts"));
    expect(out.devices).toEqual(valueExports("devices/index.ts"));
    expect(out.zoo).toContain("mnist-cnn");
    expect(out.params).toBe(6);
    expect(out.ops).toBeGreaterThan(5);
    expect(out.roundTrip).toBe(true);
    expect(out.logits).toEqual([2, 10]);
    expect(out.testSamples).toBe(10_000);
    expect(out.evalAccuracy).toBeGreaterThan(0.9);
    expect(out.ptqAccuracy).toBeGreaterThan(0.9);
    expect(out.exported).toBe(true);
    expect(out.agreement).toBeGreaterThan(0.95);
    expect(out.reportBytes).toBeGreaterThan(10_000);
    expect(out.emulated).toContain("rpi4");
    expect(out.boards.length).toBeGreaterThan(2);
    expect(out.uri).toEqual({ kind: "ssh", host: "raspberrypi.local", user: "pi", port: 2222 });
    expect(out.badUri).toBe(2);
    expect(out.setupFiles).toBeGreaterThan(5);
    expect(out.boardSamples).toBe(50);
    expect(out.boardAgreement).toBe(1);
  });

  it("runs the library guide's examples against the installed package", () => {
    // the compiled examples import "qat"; beside the app's node_modules that is the installed package
    const guide = join(app, "guide");
    mkdirSync(guide);
    const built = join(ROOT, "dist", "examples", "guide");
    for (const f of readdirSync(built).filter((f) => f.endsWith(".js")))
      copyFileSync(join(built, f), join(guide, f));
    const expectations: Record<string, (lines: string[]) => void> = {
      "gradient-descent": (l) =>
        expect(l.slice(0, 2)).toEqual(["Gradient: 6.0", "Updated Weight: 4.400000095367432"]),
      "custom-model": (l) => expect(l.join("\n")).toMatch(/after training: test accuracy (9[5-9]|100)\.\d%/),
      qconfig: (l) => expect(l.join("\n")).toMatch(/after QAT: test accuracy (9[5-9]|100)\.\d%/),
      "import-onnx": (l) => expect(l.join("\n")).toMatch(/after 50 steps: test accuracy (9[5-9]|100)\.\d+%/),
    };
    expect(readdirSync(guide).sort()).toEqual(
      [...Object.keys(expectations), "bars"].map((n) => `${n}.js`).sort(),
    );
    for (const [name, check] of Object.entries(expectations)) {
      // from the repository root, as the guide says: the examples read ../shared beside it
      const r = sh(process.execPath, [join(guide, `${name}.js`)], ROOT, 180_000);
      ok(r, `guide example ${name}`);
      check(r.stdout.trimEnd().split("\n"));
    }
    expect(existsSync(join(MODELS, "mnist-8.onnx"))).toBe(true);
  });
});
