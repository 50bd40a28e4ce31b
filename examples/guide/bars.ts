// A small image task and a model for it, built with qat's layer builders (sequential: PyTorch's nn.Sequential).

import {
  ArrayDataset,
  Conv2d,
  DataLoader,
  EvalRunner,
  Flatten,
  f32,
  i64,
  Linear,
  MaxPool2d,
  type NetModel,
  named,
  ReLU,
  Rng,
  type SessionOptions,
  sequential,
  TrainingRunner,
  type TrainingStep,
} from "qat";

/** 8×8 grey images of a horizontal bar (class 0), a vertical bar (1) or a diagonal (2), with noise. */
export function bars(count: number, seed: number): ArrayDataset {
  const rng = new Rng(seed);
  const data = new Float32Array(count * 64);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % 3;
    const k = Math.floor(rng.next() * 8);
    const img = data.subarray(i * 64, i * 64 + 64);
    for (let p = 0; p < 64; p++) {
      const [r, c] = [Math.floor(p / 8), p % 8];
      const on = label === 0 ? r === k : label === 1 ? c === k : r === (k % 2 ? 7 - c : c);
      img[p] = (on ? 1 : 0) + 0.8 * rng.next();
    }
    labels[i] = label;
  }
  return new ArrayDataset({ name: "bars", inputShape: [1, 8, 8], numClasses: 3, data, labels });
}

/** Conv(1→8, 3×3, pad 1) ReLU MaxPool2 Flatten Linear(128→3): parameters conv.weight, conv.bias, fc.weight, fc.bias. */
export function barsModel(seed = 1): NetModel {
  return sequential(
    "bars",
    [1, 8, 8],
    [named("conv", Conv2d(8, 3, { padding: 1 })), ReLU(), MaxPool2d(2), Flatten(), named("fc", Linear(3))],
    { seed },
  );
}

/** Run a training step graph over shuffled batches; returns the runner (it holds the trained values). */
export async function runEpochs(
  step: TrainingStep,
  data: ArrayDataset,
  o: { epochs: number; lr: number; session?: SessionOptions },
): Promise<TrainingRunner> {
  const runner = await TrainingRunner.create(step, o.session);
  const loader = new DataLoader(data, { batchSize: 32, seed: 1 });
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    let loss = 0;
    for await (const b of loader.epoch(epoch)) {
      loss += (await runner.run(f32([b.size, 1, 8, 8], b.x), i64([b.size], b.y), o.lr)).loss;
    }
    console.log(`epoch ${epoch + 1}: mean loss ${(loss / loader.batchesPerEpoch).toFixed(4)}`);
  }
  return runner;
}

/** Accuracy of a model's evaluation graph, with the weights a runner holds (or the model's own). */
export async function accuracy(
  net: NetModel,
  data: ArrayDataset,
  runner?: TrainingRunner,
  session?: SessionOptions,
): Promise<number> {
  const ev = await EvalRunner.create(net, session);
  try {
    const x = f32([data.length, 1, 8, 8], Float32Array.from(data.data));
    const labels = i64([data.length], data.labels);
    const { correct } = await ev.run(x, { labels, weights: runner?.weights() });
    return correct! / data.length;
  } finally {
    await ev.release();
  }
}
