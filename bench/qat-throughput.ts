/**
 * The throughput cost of QAT over float training, for qat and for PyTorch, side by side in one run.
 *
 *   npm run build && node dist/bench/qat-throughput.js [--models mnist-cnn,resnet8] [--batch 64] [--threads 2]
 *     [--windows 5] [--steps 40] [--presets ort-cpu,w4a8] [--rounds 2]
 *
 * For each model: PyTorch float / QAT (FX prepare_qat_fx, observer fake-quant) / QAT with learnable (LSQ) fake-quant
 * (bench/torch/qat_throughput.py), then qat's float training step and its QAT step for each preset (calibrated on
 * random batches; LSQ scales; ORT optimisation level "basic", as `qat train --qat` runs). Each figure is the median
 * of `windows` timed windows of `steps` steps after warm-up, same batch size, threads, SGD momentum 0.9 and
 * cross-entropy on both sides. The sides alternate for `rounds` rounds and each figure is its best round (the
 * machine is shared; contention only slows windows down). Printed: samples/s, the QAT cost (float ÷ QAT) of each,
 * and qat QAT ÷ PyTorch QAT.
 */

import type { Dataset } from "../src/data/dataset.js";
import type { NetModel } from "../src/nn/model.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import type { Tensor } from "../src/onnx/tensor.js";
import { QatTraining } from "../src/quant/qat-train.js";
import type { SessionOptions } from "../src/runtime/session.js";
import { buildTrainingStep, TrainingRunner, type TrainingStep } from "../src/train/step.js";
import { Rng } from "../src/util/rng.js";
import { runTorchScript, torchProblem } from "./torch/python.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Random images (values as a dataset stores them, 0–255) for calibration and timing. */
function randomData(shape: number[], n: number, seed: number): Dataset {
  const size = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(seed);
  const xs = Float32Array.from({ length: n * size }, () => Math.floor(rng.next() * 256));
  return {
    name: "random",
    inputShape: shape,
    numClasses: 10,
    length: n,
    stats: () => ({ mean: new Array(shape[0]).fill(127.5), std: new Array(shape[0]).fill(73.6) }),
    fill(idx, x, y) {
      for (let k = 0; k < idx.length; k++) {
        x.set(xs.subarray(idx[k]! * size, (idx[k]! + 1) * size), k * size);
        y[k] = BigInt(idx[k]! % 10);
      }
    },
  };
}

async function stepsPerSecond(
  step: TrainingStep,
  net: NetModel,
  batch: number,
  windows: number,
  steps: number,
  opts: SessionOptions,
): Promise<number> {
  const runner = await TrainingRunner.create(step, opts);
  const size = net.inputShape.reduce((a, b) => a * b, 1);
  const rng = new Rng(3);
  const xs: Tensor[] = Array.from({ length: 4 }, () => ({
    dtype: "float32",
    dims: [batch, ...net.inputShape],
    data: Float32Array.from({ length: batch * size }, () => Math.floor(rng.next() * 256)),
  }));
  const ys: Tensor[] = Array.from({ length: 4 }, () => ({
    dtype: "int64",
    dims: [batch],
    data: BigInt64Array.from({ length: batch }, () => BigInt(Math.floor(rng.next() * 10))),
  }));
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

async function main(): Promise<void> {
  const models = arg("models", "mnist-cnn,resnet8").split(",");
  const presets = arg("presets", "ort-cpu,w4a8").split(",");
  const batch = Number(arg("batch", "64"));
  const threads = Number(arg("threads", "2"));
  const windows = Number(arg("windows", "5"));
  const steps = Number(arg("steps", "40"));
  const rounds = Number(arg("rounds", "2"));
  const problem = torchProblem();
  if (problem) console.error(`PyTorch unavailable, qat only: ${problem}`);
  const rows: Record<string, unknown>[] = [];
  for (const model of models) {
    // the machine is shared: measure both sides `rounds` times, alternating, and keep each figure's best round
    // (contention only ever slows a window down)
    const best: Record<string, number> = {};
    const keep = (k: string, v: number) => {
      best[k] = Math.max(best[k] ?? 0, Math.round(v));
    };
    const net = zooModel(model, { seed: 1 });
    const data = randomData(net.inputShape, 256, 7);
    prependNormalization(net, data.stats().mean, data.stats().std);
    const opt = { optimizer: { kind: "sgd" as const, momentum: 0.9 } };
    const quantized = new Map<string, QatTraining>();
    for (const p of presets) {
      quantized.set(
        p,
        await QatTraining.create(net, { preset: p, calibrationBatches: 4 }, data, {
          batchSize: batch,
          threads,
        }),
      );
    }
    for (let round = 0; round < rounds; round++) {
      if (!problem) {
        const t = JSON.parse(
          runTorchScript("qat_throughput.py", [
            model,
            String(batch),
            String(threads),
            "5",
            String(windows),
            String(steps),
          ]),
        );
        keep("torch_float", median(t.float));
        keep("torch_qat", median(t.qat));
        keep("torch_qat_lsq", median(t.qat_lsq));
      }
      keep(
        "qat_float",
        await stepsPerSecond(buildTrainingStep(net, opt), net, batch, windows, steps, { threads }),
      );
      for (const [p, q] of quantized) {
        const so = { threads, ...q.sessionOptions };
        keep(`qat_${p}`, await stepsPerSecond(q.trainingStep(0, opt), q.netAt(0), batch, windows, steps, so));
      }
      console.error(`${model} round ${round + 1}/${rounds}: ${JSON.stringify(best)}`);
    }
    const row: Record<string, unknown> = { model, batch, threads, rounds, ...best };
    const ratio = (a: number, b: number) => +(a / b).toFixed(2);
    if (!problem) row.torch_qat_cost = ratio(best.torch_float!, best.torch_qat!);
    for (const p of presets) {
      const rate = best[`qat_${p}`]!;
      row[`qat_${p}_cost`] = ratio(best.qat_float!, rate);
      if (!problem) {
        row[`qat_${p}_vs_torch_qat`] = ratio(rate, best.torch_qat!);
        row[`qat_${p}_vs_torch_qat_lsq`] = ratio(rate, best.torch_qat_lsq!);
      }
    }
    console.error(JSON.stringify(row));
    rows.push(row);
  }
  console.log(JSON.stringify({ bench: "qat-throughput", rows }));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
