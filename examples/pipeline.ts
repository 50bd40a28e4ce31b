/**
 * The main job on the bundled defaults, through the library API — what `npm run main` runs:
 *
 *   1. train mnist-cnn on MNIST in float (1 epoch)
 *   2. per-layer quantization sensitivity of the float model (post-training, one layer at a time)
 *   3. quantization-aware training from those weights (1 epoch, qconfig ort-cpu)
 *   4. export int8 QDQ ONNX, with the parity check against the simulation on the 10,000 test images
 *   5. set up the default board — the emulated Raspberry Pi 4 (arm64 Node under qemu, ONNX Runtime's ARM
 *      kernels) — deploy the model, and validate it there against the host: the drift table
 *   6. the HTML report of the run (`qat report`)
 *
 * Data comes from ../shared/data, QAT_DATA_DIR or the download cache. Everything lands in runs/main-<time>/:
 * float/ and qat/ (run folders), sensitivity.json, model.int8.onnx, device-report.json and report.html.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Dataset,
  decodeModel,
  exportToFile,
  openFloatRun,
  openNamedDataset,
  sensitivity,
  type TrainHooks,
  train,
  writeReport,
} from "qat";
import {
  DEBIAN_PACKAGES,
  deployModel,
  formatFleet,
  installDebianPackages,
  openDevice,
  resolveDevice,
  resolveSimulation,
  setupDevice,
  validateFleet,
} from "qat/devices";

const say = (s: string) => console.log(s);

/**
 * Training feedback on stderr, in the lines `qat train` prints when its output is not a terminal: a step line every
 * few seconds and one line per epoch (on a terminal the command draws a progress bar instead).
 */
function progress(): TrainHooks {
  let last = 0;
  const lr = (v: number) => (v >= 0.001 ? v.toFixed(4) : v.toExponential(2));
  return {
    onStep(e) {
      if (Date.now() - last < 5000 && e.step !== e.totalSteps) return;
      last = Date.now();
      console.error(
        `step ${e.step}/${e.totalSteps} epoch ${e.epoch + 1} loss ${e.loss.toFixed(4)} lr ${lr(e.lr)} ` +
          `${Math.round(e.samplesPerSec)} samples/s`,
      );
    },
    onEpoch(e) {
      console.error(
        `epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)} acc ${(100 * e.trainAccuracy).toFixed(2)}% | ` +
          `${e.evalOn} acc ${(100 * e.evalAccuracy).toFixed(2)}% top-5 ${(100 * e.evalTop5).toFixed(2)}% | ` +
          `${Math.round(e.samplesPerSec)} samples/s, ${e.seconds.toFixed(1)} s`,
      );
    },
    log: (message) => console.error(message),
  };
}

/** The first `n` samples of a dataset as the board's evaluation set. */
function evalSet(ds: Dataset, n: number) {
  const size = ds.inputShape.reduce((a, b) => a * b, 1);
  const inputs = new Float32Array(n * size);
  const labels = new BigInt64Array(n);
  ds.fill(
    Array.from({ length: n }, (_, i) => i),
    inputs,
    labels,
  );
  return { inputs, sampleShape: [...ds.inputShape], labels: Array.from(labels, Number) };
}

async function main(): Promise<void> {
  const shared = join(process.cwd(), "..", "shared", "data");
  const dataDir = existsSync(shared) ? shared : undefined;
  const run = join(
    "runs",
    `main-${new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)}`,
  );

  say("== 1/6 float training: mnist-cnn on MNIST, 1 epoch");
  const float = await train(
    { model: "mnist-cnn", data: "mnist", dataDir, epochs: 1, seed: 1 },
    { out: join(run, "float"), hooks: progress() },
  );
  say(
    `float test accuracy ${(100 * float.test_accuracy).toFixed(2)}% (${Math.round(float.samples_per_s)} samples/s)`,
  );

  say("== 2/6 per-layer sensitivity of the float model (ort-cpu, one layer quantized at a time)");
  const fr = await openFloatRun(float.run, { dataDir });
  const sens = await sensitivity(fr.net, fr.train, fr.test, { preset: "ort-cpu" });
  writeFileSync(join(run, "sensitivity.json"), `${JSON.stringify(sens, null, 2)}\n`);
  say(
    `${sens.layers.map((l) => `${l.layer} ${l.delta > 0 ? "+" : ""}${(100 * l.delta).toFixed(2)} pt`).join(", ")} ` +
      `(float ${(100 * sens.float).toFixed(2)}%, all layers ${(100 * sens.quantized).toFixed(2)}%)`,
  );

  say("== 3/6 quantization-aware training (ort-cpu: uint8 activations, int8 per-channel weights), 1 epoch");
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
    { out: join(run, "qat"), hooks: progress() },
  );
  say(`QAT (fake-quant simulation) test accuracy ${(100 * qat.test_accuracy).toFixed(2)}%`);

  say("== 4/6 int8 export with the parity check");
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

  say("== 5/6 the board: deploy and validate on the default device");
  const device = resolveDevice(undefined);
  if (device.uri.startsWith("emulated:")) installDebianPackages(DEBIAN_PACKAGES, say);
  const bytes = readFileSync(out);
  const t = await openDevice(device);
  try {
    await setupDevice(t, { onProgress: say });
    const d = await deployModel(bytes, t);
    say(`deployed ${d.sha256.slice(0, 12)} to ${device.name}`);
  } finally {
    await t.close();
  }
  const limit = Number(process.env.QAT_MAIN_BOARD_SAMPLES ?? 1000);
  // the fake-quant simulation runs beside the board and the host: the QAT checkpoint the export recorded
  const simulation = resolveSimulation(decodeModel(bytes, { path: out }), { modelPath: out });
  const report = await validateFleet(
    bytes,
    evalSet(test, limit),
    [{ name: device.name, open: () => openDevice(device) }],
    {
      simulation,
    },
  );
  say(formatFleet(report));
  // the same object `qat validate --json` prints, for `qat report --device-report`
  const deviceReport = join(run, "device-report.json");
  writeFileSync(deviceReport, `${JSON.stringify({ model: out, dataset: "mnist", ...report }, null, 2)}\n`);
  if (report.exceeded) process.exitCode = 1;

  say("== 6/6 the report");
  const html = await writeReport(run, { deviceReport });
  say(
    `wrote ${html.out} (${html.charts.length} charts): open it in a browser, or again with 'qat report ${run}'`,
  );
}

main().catch((e: Error & { hint?: string }) => {
  console.error(`main: ${e.message}${e.hint ? `\n  ${e.hint}` : ""}`);
  process.exitCode = 1;
});
