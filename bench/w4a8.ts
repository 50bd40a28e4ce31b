/**
 * W4A8 post-training rounding against training, on one model and the same data (issue 15, must-show 2): MinMax
 * (weights rounded to nearest on a min-max grid), AdaRound (the rounding learned per layer, src/quant/adaround.ts)
 * and QAT by distillation (the fake-quantized model fine-tuned to reproduce the float model, no labels,
 * src/quant/distill.ts). All three use the same unlabelled calibration images (`--samples` from MNIST train) and the
 * same activation scales (min-max calibration on them). Each result goes through the export path (QDQ, parity
 * check) and the exported int8 model is evaluated with plain onnxruntime-node on the 10k MNIST test set.
 *
 *   npm run build && node dist/bench/w4a8.js --data-dir ../shared/data [--model dsnet|mnist-8|resnet8]
 *     [--per-channel] [--cosine] [--cache file] [--samples 1024] [--adaround-iters 1000] [--adaround-relu] [--distill-steps 1000]
 *     [--distill-lr 1e-4] [--threads 2]
 *
 * Weights are per-tensor unless --per-channel. `--cache` keeps the trained float model in a file and reuses it (one
 * file per set of model flags).
 */
import { existsSync } from "node:fs";
import * as ort from "onnxruntime-node";
import type { Dataset } from "../src/data/dataset.js";
import { DataLoader } from "../src/data/loader.js";
import { openNamedDataset } from "../src/data/named.js";
import { exportCheckpoint } from "../src/export/export.js";
import type { PlacementRow } from "../src/export/source.js";
import { NetBuilder } from "../src/nn/builder.js";
import { importModel } from "../src/nn/import/index.js";
import { loadStateDict, type NetModel } from "../src/nn/model.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import { cloneGraph, Graph } from "../src/onnx/ir.js";
import type { Tensor } from "../src/onnx/tensor.js";
import { adaround } from "../src/quant/adaround.js";
import { calibrate } from "../src/quant/calibrate.js";
import { distill } from "../src/quant/distill.js";
import { placementTable, placeQuant } from "../src/quant/placement.js";
import { applyQuant } from "../src/quant/prepare.js";
import { QatTraining } from "../src/quant/qat-train.js";
import { PRESETS, preset, type QConfig } from "../src/quant/qconfig.js";
import { argmax } from "../src/train/argmax.js";
import { loadCheckpoint, saveCheckpoint } from "../src/train/checkpoint.js";
import { evaluateNet } from "../src/train/evaluate.js";
import { schedule } from "../src/train/schedules.js";
import { buildTrainingStep, TrainingRunner } from "../src/train/step.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** The first n samples of a shuffled order of `ds`: the one set of unlabelled images every method sees. */
function subset(ds: Dataset, n: number, seed: number): Dataset {
  const order = Array.from({ length: ds.length }, (_, i) => i);
  let s = seed;
  for (let i = order.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const pick = order.slice(0, n);
  return {
    ...ds,
    name: `${ds.name}[${n}]`,
    length: n,
    stats: () => ds.stats(),
    fill: (idx, x, y, ctx) =>
      ds.fill(
        Array.from(idx, (k) => pick[k]!),
        x,
        y,
        ctx,
      ),
  };
}

/**
 * A small depthwise-separable net with BatchNorm (the layout of MobileNet and BlazeFace, where per-tensor weight
 * scales are known to fail once BN is folded: Nagel et al. 2019): conv 3×3 (1→16) BN ReLU, max-pool, depthwise 3×3
 * BN ReLU, pointwise 1×1 (16→32) BN ReLU, max-pool, linear. Trained one epoch on MNIST here (seeded; SGD momentum
 * 0.9, lr 0.05, or a cosine from 0.05 with --cosine); `resnet8` is the zoo's BN + residual net trained the same way.
 */
async function trainedNet(
  kind: string,
  train: Dataset,
  threads: number,
  cosine: boolean,
  cache: string,
): Promise<NetModel> {
  let net: NetModel;
  if (kind === "resnet8") net = zooModel("resnet8", { seed: 1, inputShape: [...train.inputShape] });
  else {
    const b = new NetBuilder("dsnet", [...train.inputShape], { seed: 1 });
    let x = b.conv2d(b.input, { name: "conv1", out: 16, kernel: 3, padding: 1, bias: false });
    x = b.maxPool2d(b.relu(b.batchNorm2d(x, { name: "bn1" })), { kernel: 2 });
    x = b.conv2d(x, { name: "dw", out: 16, kernel: 3, padding: 1, groups: 16, bias: false });
    x = b.relu(b.batchNorm2d(x, { name: "dw_bn" }));
    x = b.conv2d(x, { name: "pw", out: 32, kernel: 1, bias: false });
    x = b.maxPool2d(b.relu(b.batchNorm2d(x, { name: "pw_bn" })), { kernel: 2 });
    net = b.build(b.linear(b.flatten(x), { name: "fc", out: 10 }));
  }
  const st = train.stats();
  prependNormalization(net, st.mean, st.std);
  if (cache && existsSync(cache)) {
    // trained before with the same flags (--cache): its parameters and BN statistics
    loadStateDict(net, loadCheckpoint(cache).state);
    return net;
  }
  const step = buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } });
  const runner = await TrainingRunner.create(step, { threads });
  const loader = new DataLoader(train, { batchSize: 64, seed: 1, shuffle: true });
  const lr = schedule(
    cosine ? { kind: "cosine", lr: 0.05, tMax: loader.batchesPerEpoch } : { kind: "constant", lr: 0.05 },
  );
  for await (const b of loader.epoch(0)) {
    const x: Tensor = { dtype: "float32", dims: [b.size, ...train.inputShape], data: b.x };
    await runner.run(x, { dtype: "int64", dims: [b.size], data: b.y }, lr(runner.steps));
  }
  const keep = new Set([...net.params, ...net.buffers]);
  const trained = new Map([...runner.values()].filter(([k]) => keep.has(k)));
  loadStateDict(net, trained);
  await runner.release();
  if (cache) saveCheckpoint(cache, { graph: new Graph(), state: trained, meta: { kind, cosine } });
  return net;
}

/** Accuracy of an int8 model file's bytes with plain onnxruntime-node (no qat code in the loop). */
async function plainOrtAccuracy(bytes: Uint8Array, test: Dataset): Promise<number> {
  const session = await ort.InferenceSession.create(bytes);
  const loader = new DataLoader(test, { batchSize: 500, shuffle: false });
  let correct = 0;
  for await (const b of loader.epoch(0)) {
    const x = new ort.Tensor("float32", b.x.slice(), [b.size, ...test.inputShape]);
    const out = await session.run({ [session.inputNames[0]!]: x });
    const logits = out[session.outputNames[0]!]!.data as Float32Array;
    const k = logits.length / b.size;
    for (let i = 0; i < b.size; i++) if (BigInt(argmax(logits, i * k, k)) === b.y[i]) correct++;
  }
  await session.release();
  return correct / test.length;
}

interface Row {
  method: string;
  simulated: number;
  int8: number;
  parity: boolean;
  seconds: number;
}

async function main(): Promise<void> {
  const dataDir = arg("data-dir", "../shared/data");
  const model = arg("model", "dsnet");
  const perChannel = process.argv.includes("--per-channel");
  const samples = Number(arg("samples", "1024"));
  const threads = Number(arg("threads", "2"));
  const adaIters = Number(arg("adaround-iters", "1000"));
  const distillSteps = Number(arg("distill-steps", "1000"));
  const distillLr = Number(arg("distill-lr", "1e-4"));
  const train = await openNamedDataset("mnist", { split: "train", dataDir });
  const test = await openNamedDataset("mnist", { split: "test", dataDir });
  const data = subset(train, samples, 7);
  const net =
    model === "resnet8" || model === "dsnet"
      ? await trainedNet(model, train, threads, process.argv.includes("--cosine"), arg("cache", ""))
      : importModel(`../shared/models/${model}.onnx`).net;

  // W4A8 with min-max weight scales (the preset's default is the MSE-optimal clipping) and, unless --per-channel,
  // one scale per weight tensor: a user preset, registered as a user would
  const name = `w4a8-minmax${perChannel ? "" : "-per-tensor"}`;
  PRESETS[name] = () => {
    const q: QConfig = preset("w4a8");
    q.preset = name;
    q.default.weight = { ...q.default.weight, observer: "minmax", perChannel };
    return q;
  };
  const qconfig = preset(name);
  const placement = placeQuant(net, qconfig);
  const acc = async (n: NetModel) => (await evaluateNet(n, test, { batchSize: 500, threads })).accuracy;
  const floatAcc = await acc(net);
  console.error(`${model}: float ${(100 * floatAcc).toFixed(2)}% on ${test.length} test images; ${name}`);
  const cal = { batches: Math.ceil(samples / 64), batchSize: 64, threads, observer: "minmax" as const };
  const rows: Row[] = [];
  const finish = async (method: string, q: NetModel, graph: Graph, t0: number) => {
    const seconds = (performance.now() - t0) / 1000;
    const simulated = await acc(q);
    const src = {
      file: `${model}-${method}`,
      graph,
      qconfig,
      placement: placementTable(placement) as unknown as PlacementRow[],
    };
    const ex = await exportCheckpoint(src, { data: test, limit: 500, threads });
    const int8 = await plainOrtAccuracy(ex.bytes, test);
    rows.push({ method, simulated, int8, parity: ex.parity.passed, seconds });
    console.error(
      `${method}: simulated ${(100 * simulated).toFixed(2)}%, int8 (plain ORT) ${(100 * int8).toFixed(2)}%`,
    );
  };

  let t0 = performance.now();
  const qparams = await calibrate(net, placement, data, cal);
  const minmax = applyQuant(net, placement, qparams);
  await finish("MinMax (round to nearest)", minmax, minmax.eval, t0);

  t0 = performance.now();
  const ar = await adaround(net, data, {
    placement,
    samples,
    iterations: adaIters,
    reluInLoss: process.argv.includes("--adaround-relu"),
    threads,
    onLayer: (r) =>
      console.error(
        `  AdaRound ${r.layer}: held-out reconstruction error ${r.nearestError.toPrecision(4)} → ${r.adaroundError.toPrecision(4)}, ${(100 * r.flipped).toFixed(1)}% flipped, ${(100 * r.undecided).toFixed(1)}% undecided`,
      ),
  });
  const rounded: NetModel = { ...net, train: cloneGraph(net.train), eval: cloneGraph(net.eval) };
  loadStateDict(rounded, ar.weights);
  const arQparams = new Map([...qparams, ...ar.qparams]);
  const adaq = applyQuant(rounded, placement, arQparams);
  await finish("AdaRound", adaq, adaq.eval, t0);

  t0 = performance.now();
  const qat = await QatTraining.create(
    net,
    { preset: name, freezeBnAfter: net.buffers.length ? 1 : 0 },
    data,
    {
      initial: qparams,
      threads,
    },
  );
  const d = await distill(net, data, {
    qat,
    steps: distillSteps,
    lr: distillLr,
    threads,
    onProgress: (p) =>
      p.step % 250 === 0 && console.error(`  distill step ${p.step}: loss ${p.loss.toFixed(5)}`),
  });
  await finish("QAT by distillation (no labels)", d.net, d.checkpoint.graph, t0);

  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  const lost = floatAcc - rows[0]!.int8;
  console.log(
    `\n${model}, W4A8 (${perChannel ? "per-channel" : "per-tensor"} 4-bit weights, uint8 activations), ${samples} unlabelled MNIST train images; MNIST test (${test.length})`,
  );
  console.log(
    `| method | simulated | int8, plain ORT | drop vs float | MinMax loss recovered | parity | seconds |`,
  );
  console.log(`| --- | ---: | ---: | ---: | ---: | --- | ---: |`);
  console.log(`| float | ${pct(floatAcc)} | | | | | |`);
  for (const r of rows) {
    const rec = lost > 0 ? `${((100 * (r.int8 - rows[0]!.int8)) / lost).toFixed(0)}%` : "n/a";
    console.log(
      `| ${r.method} | ${pct(r.simulated)} | ${pct(r.int8)} | ${(100 * (floatAcc - r.int8)).toFixed(2)} pt | ${rec} | ${r.parity ? "pass" : "FAIL"} | ${r.seconds.toFixed(1)} |`,
    );
  }
}

await main();
