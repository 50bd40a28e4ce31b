/**
 * The data loader alone on MNIST (batch 64): batches/s and samples/s, without and with augmentation (random crop
 * with 2 pixels of padding + horizontal flip), so that the loader's cost can be set beside the training step's.
 *
 *   npm run build && node dist/bench/loader.js [--data-dir ../shared/data] [--epochs 2]
 */
import { augment } from "../src/data/augment.js";
import type { Dataset } from "../src/data/dataset.js";
import { DataLoader } from "../src/data/loader.js";
import { openNamedDataset } from "../src/data/named.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function measure(label: string, ds: Dataset, epochs: number): Promise<Record<string, number | string>> {
  const loader = new DataLoader(ds, { batchSize: 64, seed: 1, prefetch: 3 });
  let batches = 0;
  let samples = 0;
  let checksum = 0;
  const t0 = process.hrtime.bigint();
  for await (const b of loader.iterate({ epoch: 0, batch: 0 }, { epoch: epochs, batch: 0 })) {
    batches++;
    samples += b.size;
    for (let i = 0; i < b.x.length; i += 97) checksum += b.x[i]!; // touch the data
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    loader: label,
    epochs,
    batches,
    seconds: +s.toFixed(3),
    "batches/s": Math.round(batches / s),
    "samples/s": Math.round(samples / s),
    "µs/batch": +((s / batches) * 1e6).toFixed(1),
    checksum,
  };
}

async function main(): Promise<void> {
  const dataDir = arg("data-dir", new URL("../../../shared/data", import.meta.url).pathname);
  const epochs = Number(arg("epochs", "2"));
  const t0 = Date.now();
  const train = await openNamedDataset("mnist", { dataDir, download: false });
  const openMs = Date.now() - t0;
  const rows = [
    await measure("plain", train, epochs),
    await measure("crop(pad 2)+flip", augment(train, { seed: 1, cropPadding: 2, flip: true }), epochs),
  ];
  console.error(`MNIST train: ${train.length} images, opened (gunzip + parse) in ${openMs} ms`);
  console.table(rows.map(({ checksum: _c, ...r }) => r));
  console.log(JSON.stringify({ dataset: "mnist-train", batchSize: 64, openMs, results: rows }));
}

await main();
