/**
 * Accuracy of float training, post-training quantization (calibration only) and QAT, on MNIST (60k/10k):
 * float for `--float-epochs` epochs, then for each qconfig preset: PTQ (calibrate, evaluate the fake-quant eval
 * graph) and QAT (`--qat-epochs` epochs from the float weights, starting from the calibrated scales).
 * resnet8 here is the zoo's architecture on 1×28×28 inputs (the zoo builds it for 3×32×32).
 *
 *   npm run build && node dist/bench/qat-accuracy.js --data-dir ../shared/data [--models mnist-cnn,resnet8]
 *     [--presets ort-cpu,w4a8] [--float-epochs 1] [--qat-epochs 1] [--qat-lr 0.005] [--threads 2] [--steps 0]
 */
import type * as ort from "onnxruntime-node";
import { NetBuilder } from "../src/nn/builder.js";
import type { NetModel } from "../src/nn/model.js";
import { zooModel } from "../src/nn/zoo.js";
import type { Tensor } from "../src/onnx/tensor.js";
import { QatTraining } from "../src/quant/qat-train.js";
import type { Dataset } from "../src/train/data/dataset.js";
import { DataLoader } from "../src/train/data/loader.js";
import { openNamedDataset } from "../src/train/data/named.js";
import { prependNormalization } from "../src/train/normalize.js";
import { schedule } from "../src/train/schedules.js";
import { buildTrainingStep, EvalRunner, type TrainingStep, TrainingRunner } from "../src/train/step.js";
import { evaluate } from "../src/train/trainer.js";
import type { SessionOptions } from "../src/runtime/session.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** The zoo's resnet8 (torchvision names) on a 1×28×28 input. */
function resnet8Mnist(seed: number): NetModel {
  const b = new NetBuilder("resnet8", [1, 28, 28], { seed });
  let x = b.conv2d(b.input, { name: "conv1", out: 16, kernel: 3, padding: 1, bias: false });
  x = b.relu(b.batchNorm2d(x, { name: "bn1" }));
  const block = (x: string, name: string, out: number, stride: number): string => {
    let y = b.conv2d(x, { name: `${name}.conv1`, out, kernel: 3, stride, padding: 1, bias: false });
    y = b.relu(b.batchNorm2d(y, { name: `${name}.bn1` }));
    y = b.conv2d(y, { name: `${name}.conv2`, out, kernel: 3, padding: 1, bias: false });
    y = b.batchNorm2d(y, { name: `${name}.bn2` });
    let shortcut = x;
    if (stride !== 1 || b.shape(x)[0] !== out) {
      shortcut = b.conv2d(x, { name: `${name}.downsample.0`, out, kernel: 1, stride, bias: false });
      shortcut = b.batchNorm2d(shortcut, { name: `${name}.downsample.1` });
    }
    return b.relu(b.add(y, shortcut));
  };
  x = block(x, "layer1.0", 16, 1);
  x = block(x, "layer2.0", 32, 2);
  x = block(x, "layer3.0", 64, 2);
  x = b.flatten(b.globalAvgPool(x));
  return b.build(b.linear(x, { name: "fc", out: 10 }));
}

async function fit(
  step: TrainingStep,
  data: Dataset,
  epochs: number,
  lr: (s: number) => number,
  opts: SessionOptions,
  maxSteps: number,
  onSwitch?: (s: number) => TrainingStep | undefined,
): Promise<{ values: Map<string, Tensor>; runner: TrainingRunner; samplesPerSec: number }> {
  let runner = await TrainingRunner.create(step, opts);
  const loader = new DataLoader(data, { batchSize: 64, seed: 1, shuffle: true });
  let n = 0;
  let samples = 0;
  const t0 = Date.now();
  for (let e = 0; e < epochs; e++) {
    for await (const b of loader.epoch(e)) {
      const next = onSwitch?.(n);
      if (next) {
        const r = await TrainingRunner.create(next, opts);
        r.load(runner.values(), n);
        await runner.release();
        runner = r;
      }
      const x: Tensor = { dtype: "float32", dims: [b.size, ...data.inputShape], data: b.x };
      const y: Tensor = { dtype: "int64", dims: [b.size], data: b.y };
      await runner.run(x, y, lr(n));
      n++;
      samples += b.size;
      if (maxSteps && n >= maxSteps) break;
    }
  }
  const samplesPerSec = (samples * 1000) / (Date.now() - t0);
  return { values: runner.values(), runner, samplesPerSec };
}

async function accuracy(
  net: NetModel,
  test: Dataset,
  weights: Map<string, Tensor | ort.Tensor> | undefined,
  opts: SessionOptions,
): Promise<number> {
  const ev = await EvalRunner.create(net, opts);
  try {
    return (await evaluate(ev, test, weights, 500)).accuracy;
  } finally {
    await ev.release();
  }
}

async function main(): Promise<void> {
  const dataDir = arg("data-dir", "../shared/data");
  const models = arg("models", "mnist-cnn,resnet8").split(",");
  const presets = arg("presets", "ort-cpu,w4a8").split(",");
  const floatEpochs = Number(arg("float-epochs", "1"));
  const qatEpochs = Number(arg("qat-epochs", "1"));
  const qatLr = Number(arg("qat-lr", "0.005"));
  const threads = Number(arg("threads", "2"));
  const maxSteps = Number(arg("steps", "0"));
  const train = await openNamedDataset("mnist", { split: "train", dataDir });
  const test = await openNamedDataset("mnist", { split: "test", dataDir });
  const stats = train.stats();
  const rows: Record<string, unknown>[] = [];
  for (const model of models) {
    const net = model === "resnet8" ? resnet8Mnist(1) : zooModel(model, { seed: 1 });
    prependNormalization(net, stats.mean, stats.std);
    const opt = { optimizer: { kind: "sgd" as const, momentum: 0.9 } };
    const f = await fit(buildTrainingStep(net, opt), train, floatEpochs, () => 0.05, { threads }, maxSteps);
    await f.runner.release();
    for (const [k, t] of f.values) if (net.train.initializers.has(k)) {
      net.train.initializers.set(k, t);
      if (net.eval.initializers.has(k)) net.eval.initializers.set(k, t);
    }
    const floatAcc = await accuracy(net, test, undefined, { threads });
    const row: Record<string, unknown> = { model, float: floatAcc, float_samples_per_s: Math.round(f.samplesPerSec) };
    console.error(`${model}: float ${(100 * floatAcc).toFixed(2)}% (${Math.round(f.samplesPerSec)} samples/s)`);
    for (const p of presets) {
      const steps = Math.ceil(train.length / 64) * qatEpochs;
      const freeze = net.buffers.length ? Math.round(steps * 0.6) : 0;
      const qat = await QatTraining.create(net, { preset: p, freezeBnAfter: freeze }, train, { batchSize: 64, seed: 1, threads });
      const so = { threads, ...qat.sessionOptions };
      const ptq = await accuracy(qat.netAt(0), test, undefined, so);
      const total = maxSteps || steps;
      const cos = schedule({ kind: "cosine", lr: qatLr, tMax: total });
      const q = await fit(qat.trainingStep(0, opt), train, qatEpochs, cos, so, maxSteps, (s) =>
        qat.switchesAt(s) ? qat.trainingStep(s, opt) : undefined,
      );
      const qatAcc = await accuracy(qat.netAt(total), test, q.runner.weights(), so);
      await q.runner.release();
      row[`${p}_ptq`] = ptq;
      row[`${p}_qat`] = qatAcc;
      row[`${p}_qat_samples_per_s`] = Math.round(q.samplesPerSec);
      console.error(
        `${model} ${p}: PTQ ${(100 * ptq).toFixed(2)}%  QAT ${(100 * qatAcc).toFixed(2)}% ` +
          `(Δ vs float ${(100 * (qatAcc - floatAcc)).toFixed(2)} pt; ${Math.round(q.samplesPerSec)} samples/s)`,
      );
    }
    rows.push(row);
  }
  console.log(JSON.stringify({ bench: "qat-accuracy", floatEpochs, qatEpochs, qatLr, rows }));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
