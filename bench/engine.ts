/**
 * Float training throughput of qat (one ORT session run per step) against PyTorch, side by side in one run.
 *
 *   npm run build && node dist/bench/engine.js [--models mnist-cnn,cifar-cnn] [--batch 64] [--threads 2]
 *     [--windows 5] [--seconds 2] [--profile]
 *
 * For each model: PyTorch's throughput (bench/torch/train_throughput.py: same model, batch, threads, SGD momentum
 * 0.9, cross-entropy), then qat's: forward only (training-mode graph), forward+backward (gradient graph) and the
 * full training step, each the median of several timed windows after warm-up. GFLOP/s counts Conv/Gemm FLOPs
 * analytically (src/nn/flops.ts). --profile adds ORT's per-op-type and per-node time split of the training step.
 */
import type * as ort from "onnxruntime-node";
import { modelFlops, type NetModel, zooModel } from "../src/nn/index.js";
import { modelOf } from "../src/onnx/codec.js";
import { f32, i64, numel } from "../src/onnx/tensor.js";
import { openSession, toOrt } from "../src/runtime/session.js";
import { buildGradientGraph, buildTrainingStep, TrainingRunner } from "../src/train/step.js";
import { Rng } from "../src/util/rng.js";
import { profileTrainingStep } from "./step-profile.js";
import { runTorchScript, torchProblem } from "./torch/python.js";

interface Options {
  models: string[];
  batch: number;
  threads: number;
  windows: number;
  seconds: number;
  profile: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    models: ["mnist-cnn", "cifar-cnn"],
    batch: 64,
    threads: 2,
    windows: 5,
    seconds: 2,
    profile: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    if (a === "--models") o.models = v!.split(",");
    else if (a === "--batch") o.batch = Number(v);
    else if (a === "--threads") o.threads = Number(v);
    else if (a === "--windows") o.windows = Number(v);
    else if (a === "--seconds") o.seconds = Number(v);
    else if (a === "--profile") {
      o.profile = true;
      continue;
    } else throw new Error(`unknown option ${a}`);
    i++;
  }
  return o;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Samples/s of `step` over timed windows of about `seconds` each, after a warm-up of the same length. */
async function timeWindows(
  step: (i: number) => Promise<unknown>,
  batch: number,
  o: Options,
): Promise<number[]> {
  let i = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < o.seconds * 1000 || i < 3) await step(i++);
  const perStep = (performance.now() - t0) / i;
  const n = Math.max(3, Math.round((o.seconds * 1000) / perStep));
  const rates: number[] = [];
  for (let w = 0; w < o.windows; w++) {
    const s = performance.now();
    for (let k = 0; k < n; k++) await step(i++);
    rates.push((batch * n) / ((performance.now() - s) / 1000));
  }
  return rates;
}

function batches(net: NetModel, batch: number): { x: ort.Tensor[]; y: ort.Tensor[] } {
  const rng = new Rng(123);
  const x: ort.Tensor[] = [];
  const y: ort.Tensor[] = [];
  for (let k = 0; k < 4; k++) {
    const d = new Float32Array(batch * numel(net.inputShape));
    for (let j = 0; j < d.length; j++) d[j] = rng.normal();
    x.push(toOrt(f32([batch, ...net.inputShape], d)));
    y.push(
      toOrt(
        i64(
          [batch],
          Array.from({ length: batch }, () => rng.int(10)),
        ),
      ),
    );
  }
  return { x, y };
}

async function measureQat(name: string, o: Options) {
  const net = zooModel(name);
  const { x, y } = batches(net, o.batch);
  const fwdSession = await openSession(modelOf(net.train), { threads: o.threads });
  const forward = await timeWindows((i) => fwdSession.run({ [net.input]: x[i % 4]! }), o.batch, o);
  await fwdSession.release();

  const gg = buildGradientGraph(net);
  const gSession = await openSession(gg.model, { threads: o.threads });
  const weights: Record<string, ort.Tensor> = {};
  for (const k of [...net.params, ...net.buffers]) weights[k] = toOrt(net.train.initializers.get(k)!);
  const fwdBwd = await timeWindows(
    (i) => gSession.run({ ...weights, [net.input]: x[i % 4]!, labels: y[i % 4]! }),
    o.batch,
    o,
  );
  await gSession.release();

  const step = buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } });
  const runner = await TrainingRunner.create(step, { threads: o.threads });
  const full = await timeWindows((i) => runner.run(x[i % 4]!, y[i % 4]!, 0.01), o.batch, o);
  await runner.release();
  return { forward, fwdBwd, full, step: step.model };
}

/** ORT's own per-op-type and per-node time split of a training step (bench/step-profile.ts), as percentages. */
async function profileStep(name: string, o: Options): Promise<string> {
  const net = zooModel(name);
  const step = buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } });
  const p = await profileTrainingStep(step, net, o.batch, 20, { threads: o.threads });
  const top = (rows: [string, number][], n: number) =>
    rows
      .slice(0, n)
      .map(
        ([k, ms]) =>
          `    ${k.padEnd(56)} ${((100 * ms) / p.kernelMs).toFixed(1).padStart(5)}%  ${ms.toFixed(3)} ms/step`,
      );
  return [
    `  ORT profile of ${name} (20 steps): kernels ${p.kernelMs.toFixed(1)} ms of ${p.runMs.toFixed(1)} ms per run`,
    "  by op type:",
    ...top(p.byOp, 10),
    "  by node:",
    ...top(p.byNode, 12),
  ].join("\n");
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const problem = torchProblem();
  console.log(
    `qat engine benchmark: batch ${o.batch}, ${o.threads} threads, ${o.windows} windows of ~${o.seconds}s (median)`,
  );
  if (problem) console.log(`PyTorch unavailable, qat only: ${problem}`);
  const k = (v: number) => `${Math.round(v).toLocaleString("en-US")}`.padStart(8);
  for (const name of o.models) {
    const flops = modelFlops(zooModel(name));
    let torch: { windows: number[]; forward: number[] } | undefined;
    if (!problem) {
      const per = name === "mnist-cnn" ? 100 : 8;
      const args = [name, o.batch, o.threads, per, o.windows, per].map(String);
      torch = JSON.parse(runTorchScript("train_throughput.py", args)) as {
        windows: number[];
        forward: number[];
      };
    }
    const q = await measureQat(name, o);
    const qs = median(q.full);
    console.log(
      `\n${name}: ${(flops.forward / 1e6).toFixed(2)} MFLOP forward, ${(flops.trainingStep / 1e6).toFixed(2)} MFLOP per training sample (Conv+Gemm)`,
    );
    console.log(`  ${"".padEnd(26)} ${"samples/s".padStart(9)}  GFLOP/s  windows`);
    const line = (label: string, rates: number[], perSample: number) =>
      console.log(
        `  ${label.padEnd(26)} ${k(median(rates))}  ${((median(rates) * perSample) / 1e9).toFixed(1).padStart(7)}  ${rates.map((r) => Math.round(r)).join(" ")}`,
      );
    line("qat forward (train mode)", q.forward, flops.forward);
    line("qat forward+backward", q.fwdBwd, flops.trainingStep);
    line("qat training step", q.full, flops.trainingStep);
    if (torch) {
      line("torch forward (no_grad)", torch.forward, flops.forward);
      line("torch training step", torch.windows, flops.trainingStep);
      console.log(`  ratio qat/torch training step: ${(qs / median(torch.windows)).toFixed(2)}x`);
    }
    if (o.profile) console.log(await profileStep(name, o));
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
