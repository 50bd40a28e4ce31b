/**
 * Where an epoch's time goes: the training step alone on one pre-filled batch (engine only), the loader alone, and
 * the two together as `qat train` runs them (loader prefetching while ORT computes), on MNIST, batch 64.
 *
 *   npm run build && node dist/bench/train-e2e.js [--model mnist-cnn] [--steps 300] [--threads 2] [--augment]
 */
import { join } from "node:path";
import { augment } from "../src/data/augment.js";
import type { Dataset } from "../src/data/dataset.js";
import { DataLoader } from "../src/data/loader.js";
import { openNamedDataset } from "../src/data/named.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import type { Tensor } from "../src/onnx/tensor.js";
import { buildTrainingStep, TrainingRunner } from "../src/train/step.js";

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const model = arg("model", "mnist-cnn");
const steps = Number(arg("steps", "300"));
const threads = Number(arg("threads", "2"));
const batchSize = 64;

async function main(): Promise<void> {
  let ds: Dataset = await openNamedDataset("mnist", {
    split: "train",
    dataDir: arg("data-dir", join("..", "shared", "data")),
  });
  const stats = ds.stats();
  if (process.argv.includes("--augment")) ds = augment(ds, { seed: 1, cropPadding: 2, flip: false });
  const net = zooModel(model, { seed: 1 });
  prependNormalization(net, stats.mean, stats.std);
  const runner = await TrainingRunner.create(
    buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } }),
    { threads },
  );
  const loader = new DataLoader(ds, { batchSize, seed: 1 });
  const shape = [batchSize, ...net.inputShape];

  // engine only: the same batch again and again
  const first = (await loader.epoch(0).next()).value!;
  const x: Tensor = { dtype: "float32", dims: shape, data: Float32Array.from(first.x) };
  const y: Tensor = { dtype: "int64", dims: [batchSize], data: BigInt64Array.from(first.y) };
  for (let i = 0; i < 20; i++) await runner.run(x, y, 0.01);
  let t = performance.now();
  for (let i = 0; i < steps; i++) await runner.run(x, y, 0.01);
  const engine = (steps * batchSize * 1000) / (performance.now() - t);

  // loader only
  t = performance.now();
  let n = 0;
  for await (const b of loader.iterate({ epoch: 1, batch: 0 }, { epoch: 1, batch: steps })) n += b.size;
  const loaderOnly = (n * 1000) / (performance.now() - t);

  // both, as the trainer runs them
  t = performance.now();
  n = 0;
  for await (const b of loader.iterate({ epoch: 2, batch: 0 }, { epoch: 2, batch: steps })) {
    await runner.run(
      { dtype: "float32", dims: [b.size, ...net.inputShape], data: b.x },
      { dtype: "int64", dims: [b.size], data: b.y },
      0.01,
    );
    n += b.size;
  }
  const endToEnd = (n * 1000) / (performance.now() - t);
  await runner.release();

  const rows = {
    "engine only (one batch, repeated)": Math.round(engine),
    "loader only": Math.round(loaderOnly),
    "end to end (loader + step)": Math.round(endToEnd),
  };
  console.log(
    `${model}, MNIST, batch ${batchSize}, ${threads} threads, ${steps} steps${process.argv.includes("--augment") ? ", augmented" : ""}`,
  );
  console.table(Object.entries(rows).map(([what, sps]) => ({ what, "samples/s": sps })));
  console.log(`end to end runs at ${((100 * endToEnd) / engine).toFixed(1)}% of the engine-only rate`);
  console.log(
    JSON.stringify({
      model,
      threads,
      engine_samples_per_s: engine,
      loader_samples_per_s: loaderOnly,
      end_to_end_samples_per_s: endToEnd,
    }),
  );
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
