/**
 * `qat export` against PyTorch's QAT export, in one run: ONNX Runtime latency of cifar-cnn as float, as qat's int8
 * QDQ and QOperator exports, and as PyTorch 1.13's QAT → QDQ export (FX graph mode, engines qnnpack and onednn), at
 * batch 1 and 64, per thread count; plus file sizes and which integer kernels ORT actually runs (op counts of the
 * graph ORT optimises to, saved with optimizedModelFilePath).
 *
 * The qat model is calibrated on random 0–255 images (CIFAR-10 is not in ../shared); PyTorch's trains 20 steps on
 * random images. Latency does not depend on what the weights learned.
 *
 * usage: npm run build && node dist/bench/export.js [--threads 1,2] [--seconds 3] [--rounds 3] [--no-torch]
 * (--seconds per model and cell, split over --rounds interleaved rounds; the median of the rounds is printed)
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { Dataset } from "../src/data/dataset.js";
import { exportCheckpoint } from "../src/export/export.js";
import { floatTwin } from "../src/export/float.js";
import { measureLatency } from "../src/export/latency.js";
import { EXACT_HOST_CONFIG } from "../src/export/parity.js";
import { loadQatSource } from "../src/export/source.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import { decodeModel, encodeModel, modelOf } from "../src/onnx/codec.js";
import { calibrate } from "../src/quant/calibrate.js";
import { placementTable, placeQuant } from "../src/quant/placement.js";
import { applyQuant } from "../src/quant/prepare.js";
import { preset } from "../src/quant/qconfig.js";
import { saveCheckpoint } from "../src/train/checkpoint.js";
import { runTorchScript, torchProblem } from "./torch/python.js";

const argv = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : def;
};
const threadList = flag("--threads", "1,2").split(",").map(Number);
const seconds = Number(flag("--seconds", "3"));
const rounds = Number(flag("--rounds", "3"));
const broken = new Set<string>();
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const withTorch = !argv.includes("--no-torch");
const SHAPE = [3, 32, 32];

function randomImages(n: number, seed: number): Dataset {
  const size = SHAPE.reduce((a, b) => a * b, 1);
  let s = seed;
  const xs = Float32Array.from({ length: n * size }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % 256;
  });
  return {
    name: "random-cifar",
    inputShape: SHAPE,
    numClasses: 10,
    length: n,
    stats: () => ({ mean: [127, 127, 127], std: [70, 70, 70] }),
    fill(idx, x, y) {
      for (let k = 0; k < idx.length; k++) {
        x.set(xs.subarray(idx[k]! * size, (idx[k]! + 1) * size), k * size);
        y[k] = BigInt(idx[k]! % 10);
      }
    },
  };
}

/** Op counts of the graph ORT runs after its optimisations (default level "all"). */
async function optimizedOps(
  file: string,
  config: Record<string, string>,
  dir: string,
): Promise<Record<string, number>> {
  const out = join(dir, `optimized-${Math.random().toString(36).slice(2)}.onnx`);
  const s = await ort.InferenceSession.create(file, {
    graphOptimizationLevel: "all",
    optimizedModelFilePath: out,
    logSeverityLevel: 3,
    extra: { session: {}, ...nest(config) },
  });
  await s.release();
  const counts: Record<string, number> = {};
  for (const n of decodeModel(readFileSync(out)).graph.nodes) {
    if (["Identity", "Constant"].includes(n.opType)) continue;
    counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  }
  return counts;
}

function nest(flat: Record<string, string>): Record<string, unknown> {
  const out: Record<string, Record<string, string>> = {};
  for (const [k, v] of Object.entries(flat)) {
    const [a, ...rest] = k.split(".");
    out[a!] = { ...out[a!], [rest.join(".")]: v };
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "qat-bench-export-"));
  // qat: cifar-cnn, ort-cpu qconfig, calibrated, exported (with the parity check) as QDQ and QOperator
  const net = zooModel("cifar-cnn", { seed: 1 });
  prependNormalization(net, [127, 127, 127], [70, 70, 70]);
  const qconfig = preset("ort-cpu");
  const placement = placeQuant(net, qconfig);
  const qp = await calibrate(net, placement, randomImages(256, 7), { batches: 4, batchSize: 64 });
  const ckpt = join(dir, "cifar-cnn-qat.onnx");
  saveCheckpoint(ckpt, {
    graph: applyQuant(net, placement, qp, { bnFrozen: true }).eval,
    state: new Map(),
    meta: { position: { step: 0 }, quant: { qconfig, placement: placementTable(placement) } },
  });
  const src = loadQatSource(ckpt);
  const files: Record<string, string> = {};
  files.float = join(dir, "float.onnx");
  writeFileSync(files.float, encodeModel(modelOf(await floatTwin(src.graph))));
  for (const format of ["qdq", "qoperator"] as const) {
    const r = await exportCheckpoint(src, { format, data: randomImages(256, 11), threads: 2 });
    const p = r.parity;
    console.error(
      `qat ${format}: parity on ${p.samples} random images: agreement ${(100 * p.agreement).toFixed(2)}%, ` +
        `max ${p.outputs[0]!.maxSteps.toFixed(3)} steps, ${p.passed ? "passed" : "FAILED"}`,
    );
    files[`qat-${format}`] = join(dir, `qat-${format}.onnx`);
    writeFileSync(files[`qat-${format}`]!, r.bytes);
  }
  const problem = withTorch ? torchProblem() : "--no-torch";
  if (!problem) {
    for (const engine of ["qnnpack", "onednn"]) {
      const f = join(dir, `torch-${engine}.onnx`);
      runTorchScript("export_cifar_qat.py", [f, "--engine", engine, "--steps", "20"]);
      files[`torch-${engine}`] = f;
    }
  } else console.error(`PyTorch peer skipped: ${problem}`);

  const configs: [string, Record<string, string>][] = [
    ["defaults", {}],
    ["x64quantprecision", { ...EXACT_HOST_CONFIG }],
  ];
  const rows: Record<string, unknown>[] = [];
  console.log(
    `ORT ${ort.env.versions.common}, cifar-cnn, median ms per run (batch 1 / batch 64), ${seconds}s per cell in ${rounds} rounds`,
  );
  for (const [name, file] of Object.entries(files)) {
    const ops = await optimizedOps(file, {}, dir);
    const kernels = Object.entries(ops)
      .filter(([k]) => /QLinear|QGemm|Integer|Conv|Gemm|Quantize/.test(k))
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    console.log(`${name.padEnd(16)} ${String(statSync(file).size).padStart(8)} bytes  ORT runs: ${kernels}`);
  }
  for (const threads of threadList) {
    for (const [cname, config] of configs) {
      // rounds interleave the models, so a change in the machine's load falls on all of them; median of rounds
      const samples: Record<string, Record<string, number[]>> = {};
      for (let round = 0; round < rounds; round++) {
        for (const [name, file] of Object.entries(files)) {
          if ((name === "float" && cname !== "defaults") || broken.has(`${name}/${cname}`)) continue;
          try {
            const l = await measureLatency(file, SHAPE, [1, 64], {
              threads,
              config,
              seconds: seconds / rounds,
            });
            samples[name] ??= { batch1: [], batch64: [] };
            for (const b of ["batch1", "batch64"]) samples[name]![b]!.push(l[b]!);
          } catch (e) {
            broken.add(`${name}/${cname}`);
            const msg = (e as Error).message.split("\n")[0]!.slice(0, 160);
            console.log(
              `threads ${threads} ${cname.padEnd(18)} ${name.padEnd(16)} ORT cannot open it: ${msg}`,
            );
          }
        }
      }
      const lat: Record<string, Record<string, number>> = {};
      for (const [name, v] of Object.entries(samples)) {
        lat[name] = { batch1: median(v.batch1!), batch64: median(v.batch64!) };
      }
      const f =
        cname === "defaults"
          ? lat.float!
          : (rows.find((r) => r.threads === threads && r.config === "defaults")!.float as Record<
              string,
              number
            >);
      for (const [name, l] of Object.entries(lat)) {
        const ratio = (b: string) => (f[b]! / l[b]!).toFixed(2);
        console.log(
          `threads ${threads} ${cname.padEnd(18)} ${name.padEnd(16)} b1 ${l.batch1!.toFixed(3).padStart(8)} ms  b64 ${l.batch64!.toFixed(3).padStart(9)} ms` +
            (name === "float" ? "" : `   float/this: b1 ${ratio("batch1")}×  b64 ${ratio("batch64")}×`),
        );
      }
      rows.push({ threads, config: cname, ...lat, float: f });
    }
  }
  console.log(
    JSON.stringify({
      bench: "export",
      ort: ort.env.versions.common,
      seconds,
      sizes: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, statSync(v).size])),
      rows,
    }),
  );
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
