/**
 * The main job on the bundled defaults, through the library API — what `npm run main` runs:
 *
 *   1. train mnist-cnn on MNIST in float (1 epoch)
 *   2. quantization-aware training from those weights (1 epoch, qconfig ort-cpu)
 *   3. export int8 QDQ ONNX, with the parity check against the simulation on the 10,000 test images
 *   4. set up the default board — the emulated Raspberry Pi 4 (arm64 Node under qemu, ONNX Runtime's ARM
 *      kernels) — deploy the model, and validate it there against the host: the drift table
 *
 * Data comes from ../shared/data, QAT_DATA_DIR or the download cache. Everything lands in runs/main-<time>/.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deployModel } from "../devices/deploy.js";
import { installDebianPackages } from "../devices/packages.js";
import { openDevice, resolveDevice } from "../devices/registry.js";
import { setupDevice } from "../devices/setup.js";
import { DEBIAN_PACKAGES } from "../devices/transport/emulator.js";
import { formatFleet, validateFleet } from "../devices/validate.js";
import { exportToFile } from "../src/export/export.js";
import type { Dataset } from "../src/train/data/dataset.js";
import { openNamedDataset } from "../src/train/data/named.js";
import { train } from "../src/train/trainer.js";
import { trainProgress } from "../toolchain/progress.js";

const say = (s: string) => console.log(s);

/** The first `n` samples of a dataset as the board's evaluation set. */
function evalSet(ds: Dataset, n: number) {
  const size = ds.inputShape.reduce((a, b) => a * b, 1);
  const inputs = new Float32Array(n * size);
  const labels = new BigInt64Array(n);
  ds.fill(Array.from({ length: n }, (_, i) => i), inputs, labels);
  return { inputs, sampleShape: [...ds.inputShape], labels: Array.from(labels, Number) };
}

async function main(): Promise<void> {
  const shared = join(process.cwd(), "..", "shared", "data");
  const dataDir = existsSync(shared) ? shared : undefined;
  const run = join("runs", `main-${new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)}`);

  say("== 1/4 float training: mnist-cnn on MNIST, 1 epoch");
  let progress = trainProgress();
  const float = await train({ model: "mnist-cnn", data: "mnist", dataDir, epochs: 1, seed: 1 }, { out: join(run, "float"), hooks: progress });
  progress.stop();
  say(`float test accuracy ${(100 * float.test_accuracy).toFixed(2)}% (${Math.round(float.samples_per_s)} samples/s)`);

  say("== 2/4 quantization-aware training (ort-cpu: uint8 activations, int8 per-channel weights), 1 epoch");
  progress = trainProgress();
  const qat = await train(
    {
      model: "mnist-cnn",
      data: "mnist",
      dataDir,
      epochs: 1,
      seed: 1,
      init: float.run,
      qat: { preset: "ort-cpu" },
      schedule: { kind: "cosine", lr: 0.005, tMax: 0 },
    },
    { out: join(run, "qat"), hooks: progress },
  );
  progress.stop();
  say(`QAT (fake-quant simulation) test accuracy ${(100 * qat.test_accuracy).toFixed(2)}%`);

  say("== 3/4 int8 export with the parity check");
  const test = await openNamedDataset("mnist", { split: "test", dataDir });
  const out = join(run, "model.int8.onnx");
  const ex = await exportToFile(qat.run, out, { data: test });
  const p = ex.parity;
  say(
    `parity on ${p.samples} images: simulation ${(100 * p.simulationAccuracy).toFixed(2)}%, ` +
      `int8 in ORT ${(100 * p.exportAccuracy).toFixed(2)}%, top-1 agreement ${(100 * p.agreement).toFixed(2)}%; ` +
      `${(ex.sizes.float / 1024).toFixed(1)} KiB float → ${(ex.sizes.int8 / 1024).toFixed(1)} KiB int8`,
  );
  if (!ex.written) throw new Error(`the export did not pass its parity check; nothing written`);
  say(`wrote ${out}`);

  say("== 4/4 the board: deploy and validate on the default device");
  const device = resolveDevice(undefined);
  if (device.uri.startsWith("emulated:")) installDebianPackages(DEBIAN_PACKAGES, say);
  const t = await openDevice(device);
  try {
    await setupDevice(t, { onProgress: say });
    const bytes = readFileSync(out);
    const d = await deployModel(bytes, t);
    say(`deployed ${d.sha256.slice(0, 12)} to ${device.name}`);
  } finally {
    await t.close();
  }
  const limit = Number(process.env.QAT_MAIN_BOARD_SAMPLES ?? 1000);
  const report = await validateFleet(readFileSync(out), evalSet(test, limit), [
    { name: device.name, open: () => openDevice(device) },
  ]);
  say(formatFleet(report));
  if (report.exceeded) process.exitCode = 1;
}

main().catch((e: Error & { hint?: string }) => {
  console.error(`main: ${e.message}${e.hint ? `\n  ${e.hint}` : ""}`);
  process.exitCode = 1;
});
