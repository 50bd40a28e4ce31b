/**
 * The throughput cost of QAT over float training, for qat and for PyTorch, side by side in one run.
 *
 *   npm run build && node dist/bench/qat-throughput.js [--models mnist-cnn,resnet8] [--batch 64] [--threads 2]
 *     [--windows 5] [--steps 40] [--presets ort-cpu,w4a8] [--rounds 2] [--rss 64,256] [--check]
 *
 * Models: any zoo model, "bn-residual" (PyTorch's BN + residual net exported to ONNX at 3×32×32 and imported, the
 * path of `qat train --from`) and "blazeface" (MediaPipe's BlazeFace imported with every output, as `qat quantize`
 * does; its PyTorch twin is rebuilt from qat's dumped training graph by bench/torch/graph_twin.py); see
 * bench/bench-models.ts. tiny-det and blazeface, whose outputs are not class scores, train with MSE against fixed
 * random targets on both sides (the loss column of each row); the others with cross-entropy. `--check` first
 * compares the twin's training-mode forward with qat's on the same weights and batch (bench/twin-check.ts) and
 * adds twin_max_abs_diff to the row.
 * For each model: PyTorch float / QAT (FX prepare_qat_fx, observer fake-quant) / QAT with learnable (LSQ) fake-quant
 * (bench/torch/qat_throughput.py), then qat's float training step and its QAT step for each preset (calibrated on
 * random batches; LSQ scales; ORT optimisation level "basic", as `qat train --qat` runs). Each figure is the median
 * of `windows` timed windows of `steps` steps after warm-up, same batch size, threads, SGD momentum 0.9 and
 * loss on both sides. The sides alternate for `rounds` rounds and each figure is its best round (the
 * machine is shared; contention only slows windows down). Printed: samples/s, the QAT cost (float ÷ QAT) of each,
 * qat float ÷ PyTorch float, qat QAT ÷ PyTorch QAT, qat's float-step GFLOP/s (Conv+Gemm, src/nn/flops.ts) against
 * its training-mode forward's (step_pct_of_forward), and with --rss the peak RSS of each side's float and QAT step
 * at those batch sizes, each in a fresh process (bench/step-rss.ts, bench/torch/step_rss.py).
 */

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { modelFlops } from "../src/nn/flops.js";
import type { NetModel } from "../src/nn/model.js";
import { modelOf } from "../src/onnx/codec.js";
import { QatTraining } from "../src/quant/qat-train.js";
import { openSession, type SessionOptions } from "../src/runtime/session.js";
import { buildTrainingStep, TrainingRunner, type TrainingStep } from "../src/train/step.js";
import { type BenchNet, benchNet, GRAPH_TWINS } from "./bench-models.js";
import { stepBatches } from "./random-data.js";
import { runTorchScript, torchProblem } from "./torch/python.js";
import { checkTwin, withGraphDump } from "./twin-check.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function stepsPerSecond(
  step: TrainingStep,
  net: NetModel,
  batch: number,
  windows: number,
  steps: number,
  opts: SessionOptions,
): Promise<number> {
  const runner = await TrainingRunner.create(step, opts);
  const spec = step.lossSpec;
  const { xs, ys } = stepBatches(net, batch, 3, spec.kind === "graph" ? spec.targetShape[0] : undefined);
  for (let i = 0; i < 5; i++) await runner.run(xs[i % 4]!, ys[i % 4]!, 0.001);
  const rates: number[] = [];
  for (let w = 0; w < windows; w++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) await runner.run(xs[i % 4]!, ys[i % 4]!, 0.001);
    rates.push((batch * steps) / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  await runner.release();
  return median(rates);
}

/** Samples/s of the training-mode forward pass alone (the rate ORT's kernels set for this model). */
async function forwardPerSecond(
  net: NetModel,
  batch: number,
  windows: number,
  steps: number,
  threads: number,
) {
  const session = await openSession(modelOf(net.train), { threads });
  const { xs } = stepBatches(net, batch);
  for (let i = 0; i < 3; i++) await session.run({ [net.input]: xs[i % 4]! });
  const rates: number[] = [];
  for (let w = 0; w < windows; w++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) await session.run({ [net.input]: xs[i % 4]! });
    rates.push((batch * steps) / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  await session.release();
  return median(rates);
}

/** Peak RSS (MB) of one training step kind in a fresh process, qat (step-rss.js) or PyTorch (step_rss.py). */
function peakRss(
  side: "qat" | "torch",
  model: string,
  batch: number,
  threads: number,
  kind: string,
  graph?: string,
): number {
  const args = [model, String(batch), String(threads), kind];
  const r =
    side === "qat"
      ? spawnSync(process.execPath, [fileURLToPath(new URL("./step-rss.js", import.meta.url)), ...args], {
          encoding: "utf8",
        })
      : {
          stdout: runTorchScript("step_rss.py", [...args, ...graphArg(graph)], undefined, TORCH_TIMEOUT_MS),
          status: 0,
          stderr: "",
        };
  if (r.status !== 0) throw new Error(`peak RSS of ${side} ${model} ${kind} failed: ${r.stderr}`);
  return (JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { peak_mb: number }).peak_mb;
}

/**
 * PyTorch's scripts may run long: its QAT steps of the detectors take seconds each on a loaded 2-core machine, and
 * one qat_throughput.py call times three kinds of step (python.ts's default limit is 10 minutes).
 */
const TORCH_TIMEOUT_MS = 3 * 3600_000;

/** The twin's graph dump folder, for the PyTorch scripts of graph twins (bench/torch/graph_twin.py). */
const graphArg = (dir?: string): string[] => (dir ? ["--graph", dir] : []);

interface Settings {
  presets: string[];
  batch: number;
  threads: number;
  windows: number;
  steps: number;
  rounds: number;
  rssBatches: number[];
  check: boolean;
  /** Why PyTorch cannot run, or null. */
  problem: string | null;
}

/** Both sides' figures for one model, alternating `rounds` times; each figure's best round. */
async function measure(
  model: string,
  bench: BenchNet,
  s: Settings,
  graph?: string,
): Promise<Record<string, number>> {
  const { net, data, loss } = bench;
  const { batch, threads, windows, steps } = s;
  // the machine is shared: measure both sides `rounds` times, alternating, and keep each figure's best round
  // (contention only ever slows a window down)
  const best: Record<string, number> = {};
  const keep = (k: string, v: number) => {
    best[k] = Math.max(best[k] ?? 0, Math.round(v));
  };
  const opt = { optimizer: { kind: "sgd" as const, momentum: 0.9 }, loss };
  const quantized = new Map<string, QatTraining>();
  for (const p of s.presets) {
    quantized.set(
      p,
      await QatTraining.create(net, { preset: p, calibrationBatches: 4 }, data, {
        batchSize: batch,
        threads,
      }),
    );
  }
  for (let round = 0; round < s.rounds; round++) {
    if (!s.problem) {
      const args = [
        model,
        String(batch),
        String(threads),
        "5",
        String(windows),
        String(steps),
        ...graphArg(graph),
      ];
      const t = JSON.parse(runTorchScript("qat_throughput.py", args, undefined, TORCH_TIMEOUT_MS));
      keep("torch_float", median(t.float));
      keep("torch_qat", median(t.qat));
      keep("torch_qat_lsq", median(t.qat_lsq));
    }
    keep("qat_forward", await forwardPerSecond(net, batch, windows, steps, threads));
    keep(
      "qat_float",
      await stepsPerSecond(buildTrainingStep(net, opt), net, batch, windows, steps, { threads }),
    );
    for (const [p, q] of quantized) {
      const so = { threads, ...q.sessionOptions };
      keep(`qat_${p}`, await stepsPerSecond(q.trainingStep(0, opt), q.netAt(0), batch, windows, steps, so));
    }
    console.error(`${model} round ${round + 1}/${s.rounds}: ${JSON.stringify(best)}`);
  }
  return best;
}

/** One model's row: figures, ratios, FLOP rates, peak RSS. */
async function modelRow(model: string, s: Settings): Promise<Record<string, unknown>> {
  const bench = benchNet(model);
  const { net } = bench;
  const row: Record<string, unknown> = {
    model,
    batch: s.batch,
    threads: s.threads,
    rounds: s.rounds,
    loss: bench.loss ? "mse" : "cross-entropy",
  };
  if (s.check && !s.problem) {
    const c = await checkTwin(model, { threads: s.threads });
    row.twin = c.twin;
    row.twin_max_abs_diff = c.max_abs_diff;
    row.twin_max_abs_output = c.max_abs_output;
  }
  // graph twins: PyTorch rebuilds the network from qat's training graph, dumped once for all the scripts
  const run = <T>(fn: (graph?: string) => Promise<T>): Promise<T> =>
    GRAPH_TWINS.has(model) && !s.problem ? withGraphDump(net, fn) : fn();
  const best = await run((graph) => measure(model, bench, s, graph));
  Object.assign(row, best);
  const ratio = (a: number, b: number) => +(a / b).toFixed(2);
  const flops = modelFlops(net);
  const stepRate = (best.qat_float! * flops.trainingStep) / 1e9;
  const forwardRate = (best.qat_forward! * flops.forward) / 1e9;
  row.step_gflops = +stepRate.toFixed(1);
  row.forward_gflops = +forwardRate.toFixed(1);
  row.step_pct_of_forward = Math.round((100 * stepRate) / forwardRate);
  if (!s.problem) {
    row.torch_qat_cost = ratio(best.torch_float!, best.torch_qat!);
    row.float_vs_torch = ratio(best.qat_float!, best.torch_float!);
  }
  for (const b of s.rssBatches) {
    row[`rss_mb_b${b}`] = await run(async (graph) => ({
      qat_float: peakRss("qat", model, b, s.threads, "float"),
      qat_qat: peakRss("qat", model, b, s.threads, "qat"),
      ...(s.problem
        ? {}
        : {
            torch_float: peakRss("torch", model, b, s.threads, "float", graph),
            torch_qat: peakRss("torch", model, b, s.threads, "qat", graph),
          }),
    }));
  }
  for (const p of s.presets) {
    const rate = best[`qat_${p}`]!;
    row[`qat_${p}_cost`] = ratio(best.qat_float!, rate);
    if (!s.problem) {
      row[`qat_${p}_vs_torch_qat`] = ratio(rate, best.torch_qat!);
      row[`qat_${p}_vs_torch_qat_lsq`] = ratio(rate, best.torch_qat_lsq!);
    }
  }
  return row;
}

async function main(): Promise<void> {
  const models = arg("models", "mnist-cnn,resnet8").split(",");
  const settings: Settings = {
    presets: arg("presets", "ort-cpu,w4a8").split(","),
    batch: Number(arg("batch", "64")),
    threads: Number(arg("threads", "2")),
    windows: Number(arg("windows", "5")),
    steps: Number(arg("steps", "40")),
    rounds: Number(arg("rounds", "2")),
    rssBatches: arg("rss", "").split(",").filter(Boolean).map(Number),
    check: process.argv.includes("--check"),
    problem: torchProblem(),
  };
  if (settings.problem) console.error(`PyTorch unavailable, qat only: ${settings.problem}`);
  const rows: Record<string, unknown>[] = [];
  for (const model of models) {
    const row = await modelRow(model, settings);
    console.error(JSON.stringify(row));
    rows.push(row);
  }
  console.log(JSON.stringify({ bench: "qat-throughput", rows }));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
