/**
 * A run folder in the layout of `npm run main`, made by the real pieces on a short budget: float training and QAT
 * of mnist-cnn (a few dozen steps each), the sensitivity analysis, the int8 export with its parity check, and a
 * validation on the host itself as the board (the local transport: the agent as a child process).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupDevice } from "../../devices/setup.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { validateFleet } from "../../devices/validate.js";
import { openNamedDataset } from "../../src/data/named.js";
import { exportToFile } from "../../src/export/export.js";
import { openFloatRun } from "../../src/pipeline/float-run.js";
import { train } from "../../src/pipeline/trainer.js";
import { sensitivity } from "../../src/quant/sensitivity.js";
import { DATA } from "../helpers/paths.js";

export interface Fixture {
  dir: string;
  run: string;
  agentHome: string;
}

export const BOARD_SAMPLES = 200;

export async function pipelineRun(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "qat-report-"));
  const run = join(dir, "main-test");
  mkdirSync(run);
  const base = {
    model: "mnist-cnn",
    data: "mnist",
    dataDir: DATA,
    epochs: 1,
    seed: 1,
    threads: 1,
    evalLimit: 500,
  };
  const float = await train({ ...base, maxSteps: 40 }, { out: join(run, "float") });
  const fr = await openFloatRun(float.run, { dataDir: DATA });
  const sens = await sensitivity(fr.net, fr.train, fr.test, {
    preset: "ort-cpu",
    calibrationBatches: 2,
    evalLimit: 300,
    threads: 1,
  });
  writeFileSync(join(run, "sensitivity.json"), JSON.stringify(sens));
  const qat = await train(
    {
      ...base,
      maxSteps: 30,
      init: float.run,
      qat: { preset: "ort-cpu", calibrationBatches: 2 },
      schedule: { kind: "cosine", lr: 0.005, tMax: 0 },
    },
    { out: join(run, "qat") },
  );
  const test = await openNamedDataset("mnist", { split: "test", dataDir: DATA });
  const int8 = join(run, "model.int8.onnx");
  const ex = await exportToFile(qat.run, int8, { data: test, limit: 256, threads: 1 });
  if (!ex.written)
    throw new Error(`fixture: the export failed its parity check: ${ex.parity.failures.join("; ")}`);

  const agentHome = join(dir, "agent-home");
  const board = new LocalTransport({ home: agentHome, label: "local-board" });
  try {
    await setupDevice(board);
  } finally {
    await board.close();
  }
  const size = 784;
  const inputs = new Float32Array(BOARD_SAMPLES * size);
  const y = new BigInt64Array(BOARD_SAMPLES);
  test.fill(
    Array.from({ length: BOARD_SAMPLES }, (_, i) => i),
    inputs,
    y,
  );
  const report = await validateFleet(
    readFileSync(int8),
    { inputs, sampleShape: [1, 28, 28], labels: Array.from(y, Number) },
    [
      {
        name: "local-board",
        open: async () => new LocalTransport({ home: agentHome, label: "local-board" }),
      },
    ],
  );
  writeFileSync(
    join(run, "device-report.json"),
    JSON.stringify({ model: int8, dataset: "mnist", ...report }),
  );
  return { dir, run, agentHome };
}
