/**
 * Accuracy of float training, post-training quantization (calibration only) and QAT, on MNIST (60k/10k):
 * float for `--float-epochs` epochs, then for each qconfig preset: PTQ (calibrate, evaluate the fake-quant eval
 * graph) and QAT (`--qat-epochs` epochs from the float weights, starting from the calibrated scales).
 * resnet8 is the zoo's, built for MNIST's 1×28×28 inputs.
 *
 *   npm run build && node dist/bench/qat-accuracy.js --data-dir ../shared/data [--models mnist-cnn,resnet8]
 *     [--presets ort-cpu,w4a8] [--float-epochs 1] [--qat-epochs 1] [--qat-lr 0.005] [--threads 2] [--steps 0]
 *     [--finetune]
 *
 * --finetune adds the fair float reference for QAT: the float model trained `--qat-epochs` more epochs with QAT's
 * schedule (cosine from --qat-lr), so "QAT − float" is not flattered by QAT's extra epoch. `--presets none` skips
 * the quantized runs.
 */
import type * as ort from "onnxruntime-node";
import type { Dataset } from "../src/data/dataset.js";
import { DataLoader } from "../src/data/loader.js";
import { openNamedDataset } from "../src/data/named.js";
import type { NetModel } from "../src/nn/model.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import type { Tensor } from "../src/onnx/tensor.js";
import { QatTraining } from "../src/quant/qat-train.js";
import type { SessionOptions } from "../src/runtime/session.js";
import { evaluate } from "../src/train/evaluate.js";
import { schedule } from "../src/train/schedules.js";
import { buildTrainingStep, EvalRunner, TrainingRunner, type TrainingStep } from "../src/train/step.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function trainFor(
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
  const presets = arg("presets", "ort-cpu,w4a8")
    .split(",")
    .filter((p) => p !== "none");
  const finetune = process.argv.includes("--finetune");
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
    const net = zooModel(model, { seed: 1, inputShape: [...train.inputShape] });
    prependNormalization(net, stats.mean, stats.std);
    const opt = { optimizer: { kind: "sgd" as const, momentum: 0.9 } };
    const f = await trainFor(
      buildTrainingStep(net, opt),
      train,
      floatEpochs,
      () => 0.05,
      { threads },
      maxSteps,
    );
    await f.runner.release();
    for (const [k, t] of f.values)
      if (net.train.initializers.has(k)) {
        net.train.initializers.set(k, t);
        if (net.eval.initializers.has(k)) net.eval.initializers.set(k, t);
      }
    const floatAcc = await accuracy(net, test, undefined, { threads });
    const row: Record<string, unknown> = {
      model,
      float: floatAcc,
      float_samples_per_s: Math.round(f.samplesPerSec),
    };
    console.error(
      `${model}: float ${(100 * floatAcc).toFixed(2)}% (${Math.round(f.samplesPerSec)} samples/s)`,
    );
    if (finetune) {
      const total = maxSteps || Math.ceil(train.length / 64) * qatEpochs;
      const cos = schedule({ kind: "cosine", lr: qatLr, tMax: total });
      const ft = await trainFor(buildTrainingStep(net, opt), train, qatEpochs, cos, { threads }, maxSteps);
      const ftAcc = await accuracy(net, test, ft.runner.weights(), { threads });
      await ft.runner.release();
      row.float_finetuned = ftAcc;
      console.error(
        `${model}: float + ${qatEpochs} epoch(s) of QAT's schedule, no quantization: ${(100 * ftAcc).toFixed(2)}%`,
      );
    }
    for (const p of presets) {
      const steps = Math.ceil(train.length / 64) * qatEpochs;
      const freeze = net.buffers.length ? Math.round(steps * 0.6) : 0;
      const qat = await QatTraining.create(net, { preset: p, freezeBnAfter: freeze }, train, {
        batchSize: 64,
        seed: 1,
        threads,
      });
      const so = { threads, ...qat.sessionOptions };
      const ptq = await accuracy(qat.netAt(0), test, undefined, so);
      const total = maxSteps || steps;
      const cos = schedule({ kind: "cosine", lr: qatLr, tMax: total });
      const q = await trainFor(qat.trainingStep(0, opt), train, qatEpochs, cos, so, maxSteps, (s) =>
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
