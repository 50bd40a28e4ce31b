#!/usr/bin/env node
/**
 * A stand-in for NVIDIA's trtexec, for tests on boards without a GPU. It implements the flags qat's agent uses, as
 * trtexec documents them (TensorRT samples/trtexec, sampleOptions.cpp / sampleReporting.cpp of 8.6 and 10.x), and
 * computes with onnxruntime-node instead of TensorRT:
 *
 *   --help                      the banner "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # …" and help text
 *   --onnx=F --saveEngine=E     "build": checks the model loads, writes E (a JSON header + the ONNX bytes)
 *   --int8                      int8 precision; a model with Q/DQ nodes fails to build without it (as TensorRT does)
 *   --shapes=name:AxB,…         shapes of dynamic inputs (a dynamic input without one fails; a static one warns)
 *   --skipInference             exit after the build (--buildOnly before 8.6)
 *   --loadEngine=E              run a saved engine (refused when written by another TensorRT version)
 *   --loadInputs=name:file,…    raw little-endian input values; the size must match the shape exactly
 *   --exportOutput=F            the outputs as trtexec's JSON: [{ "name", "dimensions": "1x10", "values": […] }]
 *   --iterations=N --warmUp=N --duration=N
 *
 * and prints trtexec's "=== Performance summary ===" lines. FAKE_TRTEXEC_VERSION sets the reported version
 * (default 100300 = 10.3.0); FAKE_TRTEXEC_LOG names a file that gets one JSON line per call (the argv), so tests
 * can check what the agent ran.
 */
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const ort = require("onnxruntime-node");

const VERSION = Number(process.env.FAKE_TRTEXEC_VERSION ?? 100300);
const args = process.argv.slice(2);
const banner = `TensorRT.trtexec [TensorRT v${VERSION}] # trtexec ${args.join(" ")}`;
const stamp = () => {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `[${p(d.getMonth() + 1)}/${p(d.getDate())}/${d.getFullYear()}-${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}]`;
};
const info = (s) => process.stdout.write(`${stamp()} [I] ${s}\n`);
const warn = (s) => process.stdout.write(`${stamp()} [W] ${s}\n`);
const fail = (s) => {
  process.stdout.write(`${stamp()} [E] ${s}\n&&&& FAILED ${banner}\n`);
  process.exit(1);
};

if (process.env.FAKE_TRTEXEC_LOG) appendFileSync(process.env.FAKE_TRTEXEC_LOG, `${JSON.stringify(args)}\n`);
process.stdout.write(`&&&& RUNNING ${banner}\n`);

const major = VERSION >= 100000 ? Math.floor(VERSION / 10000) : Math.floor(VERSION / 1000);
const minor = VERSION >= 100000 ? Math.floor(VERSION / 100) % 100 : Math.floor(VERSION / 100) % 10;
const KNOWN = new Set([
  "help",
  "onnx",
  "saveEngine",
  "loadEngine",
  "int8",
  "shapes",
  "loadInputs",
  "exportOutput",
  "iterations",
  "warmUp",
  "duration",
  major > 8 || (major === 8 && minor >= 6) ? "skipInference" : "buildOnly",
]);
const opt = {};
for (const a of args) {
  const m = /^--([A-Za-z0-9]+)(?:=(.*))?$/.exec(a);
  if (!m || !KNOWN.has(m[1])) fail(`Unknown option: ${a}`);
  opt[m[1]] = m[2] ?? true;
}
if (opt.help) {
  process.stdout.write("=== Model Options ===\n  --onnx=<file>               ONNX model\n");
  process.stdout.write(`&&&& PASSED ${banner}\n`);
  process.exit(0);
}

/** A spec "a:1x2,'b:c':3x4" as [name, value] pairs (names may be wrapped in single quotes). */
function pairs(spec) {
  const out = [];
  const re = /(?:'([^']*)'|([^:,]+)):([^,]*)/g;
  for (const m of spec.matchAll(re)) out.push([m[1] ?? m[2], m[3]]);
  return out;
}

/** C++ ostream's default float output: %g with 6 significant digits, nan, inf. */
function cpp(v) {
  if (Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  if (v === 0) return "0";
  const exp = Math.floor(Math.log10(Math.abs(v)));
  if (exp < -5 || exp >= 6) {
    const [m, e] = v.toExponential(5).split("e");
    const mant = m.includes(".") ? m.replace(/0+$/, "").replace(/\.$/, "") : m;
    const n = Number(e);
    return `${mant}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
  }
  const s = v.toPrecision(6);
  return s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s;
}

async function main() {
  const shapes = new Map(opt.shapes ? pairs(opt.shapes).map(([n, d]) => [n, d.split("x").map(Number)]) : []);
  if (opt.onnx) {
    if (!opt.saveEngine)
      fail("--onnx without --saveEngine: nothing to keep (this stand-in only builds engines)");
    const bytes = readFileSync(opt.onnx);
    const session = await ort.InferenceSession.create(bytes).catch((e) =>
      fail(`ModelImporter: ${e.message}`),
    );
    const quantized =
      bytes.includes(Buffer.from("QuantizeLinear")) || bytes.includes(Buffer.from("DequantizeLinear"));
    if (quantized && !opt.int8 && major < 11) {
      fail(
        "Error Code 4: Internal Error (Int8 precision has been set for a layer or layer output, but int8 is not configured in the builder)",
      );
    }
    const dims = {};
    for (const m of session.inputMetadata) {
      const isStatic = m.shape.every((d) => typeof d === "number");
      if (isStatic) {
        if (shapes.has(m.name))
          warn(
            "Static model does not take explicit shapes since the shape of inference tensors will be determined by the model itself",
          );
        dims[m.name] = m.shape;
      } else {
        const s = shapes.get(m.name);
        if (!s)
          fail(
            `Dynamic dimensions required for input: ${m.name}, but no shapes were provided. Automatically overriding shape to: 1x…`,
          );
        if (s.length !== m.shape.length)
          fail(`input ${m.name}: --shapes has ${s.length} dims, the model ${m.shape.length}`);
        dims[m.name] = s;
      }
    }
    const header = Buffer.from(
      `${JSON.stringify({ fakeTrt: 1, version: VERSION, int8: !!opt.int8, dims })}\n`,
    );
    writeFileSync(opt.saveEngine, Buffer.concat([header, bytes]));
    info(`Engine built in 0.01 sec.`);
    if (!opt.skipInference && !opt.buildOnly) info("(this stand-in runs no inference on random inputs)");
    process.stdout.write(`&&&& PASSED ${banner}\n`);
    return;
  }
  if (!opt.loadEngine) fail("Model missing or format not recognized");
  const plan = readFileSync(opt.loadEngine);
  const nl = plan.indexOf(10);
  let header;
  try {
    header = JSON.parse(plan.subarray(0, nl).toString("utf8"));
  } catch {
    fail(
      "Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)",
    );
  }
  if (header.version !== VERSION)
    fail(
      `The engine plan file is not compatible with this version of TensorRT, expecting library version ${VERSION} got ${header.version}`,
    );
  const session = await ort.InferenceSession.create(plan.subarray(nl + 1));
  const feeds = {};
  const loads = new Map(opt.loadInputs ? pairs(opt.loadInputs) : []);
  for (const m of session.inputMetadata) {
    const d = header.dims[m.name];
    const file = loads.get(m.name);
    const count = d.reduce((a, b) => a * b, 1);
    let data;
    if (file) {
      const raw = readFileSync(file);
      if (raw.length !== count * 4)
        fail(
          `Unexpected file size for input file: ${file}. Note: Expected: ${count * 4} bytes but only read: ${raw.length} bytes`,
        );
      data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    } else data = Float32Array.from({ length: count }, () => Math.random());
    feeds[m.name] = new ort.Tensor("float32", data, d);
  }
  const n = Math.max(1, Number(opt.iterations ?? 10));
  const times = [];
  let out;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    out = await session.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const pct = (p) => times[Math.max(0, Math.ceil((p / 100) * times.length) - 1)];
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const line = (f) =>
    `min = ${cpp(f * times[0])} ms, max = ${cpp(f * times.at(-1))} ms, mean = ${cpp(f * mean)} ms, median = ${cpp(f * pct(50))} ms, ` +
    `percentile(90%) = ${cpp(f * pct(90))} ms, percentile(95%) = ${cpp(f * pct(95))} ms, percentile(99%) = ${cpp(f * pct(99))} ms`;
  if (opt.exportOutput) {
    let json = "[\n";
    let sep = "  ";
    for (const name of session.outputNames) {
      const t = out[name];
      json += `${sep}{ "name" : "${name}"\n`;
      sep = ", ";
      json += `  ${sep}"dimensions" : "${t.dims.join("x")}"\n`;
      json += `  ${sep}"values" : [ ${Array.from(t.data, (v) => cpp(Number(v))).join(sep)} ]\n  }\n`;
    }
    writeFileSync(opt.exportOutput, `${json}]\n`);
  }
  info("");
  info("=== Performance summary ===");
  info(`Throughput: ${cpp((1000 * n) / times.reduce((a, b) => a + b, 0))} qps`);
  info(`Latency: ${line(1)}`);
  info(`Enqueue Time: ${line(0.1)}`);
  info(`H2D Latency: ${line(0.05)}`);
  info(`GPU Compute Time: ${line(0.9)}`);
  info(`D2H Latency: ${line(0.05)}`);
  info(`Total Host Walltime: ${cpp(times.reduce((a, b) => a + b, 0) / 1000)} s`);
  process.stdout.write(`&&&& PASSED ${banner}\n`);
}

main().catch((e) => fail(e.message));
