import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { zipSync } from "fflate";
import { afterAll, describe, expect, test } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { exportToFile } from "../../src/export/export.js";
import { train } from "../../src/pipeline/trainer.js";
import { npyBytes, tempDir } from "../data/fixtures.js";
import { MODELS } from "../helpers/paths.js";
import { seeded } from "../helpers/random.js";

/**
 * Quantization-aware training of imported pretrained models, through the same `train` a `qat train --from … --qat`
 * runs: 20 QAT steps (ort-cpu) on a small fixed set of seeded random inputs with random labels (small enough to
 * learn: the loss must go down), then the int8 export with its parity check on other random inputs.
 */
const CASES: { file: string; shape: number[]; classes: number; batch: number; scale: number; lr: number }[] =
  [
    { file: "mnist-zoo-2018-opset1.onnx", shape: [1, 28, 28], classes: 10, batch: 8, scale: 255, lr: 1e-3 },
    { file: "cifar10-imageclassifier.onnx", shape: [3, 32, 32], classes: 10, batch: 8, scale: 1, lr: 1e-3 },
    { file: "iris-mlp.onnx", shape: [4], classes: 3, batch: 8, scale: 4, lr: 1e-2 },
    { file: "squeezenet1.0-fp16.onnx", shape: [3, 224, 224], classes: 1000, batch: 2, scale: 50, lr: 1e-4 },
  ];

const tmp = tempDir();
afterAll(() => tmp.done());

/**
 * An NPZ of `n` samples: `distinct` seeded random inputs in [-scale, scale) with random labels below `classes`,
 * repeated in turn (a one-file dataset needs 20 samples; a few distinct ones make a set 20 steps can learn).
 */
function randomNpz(
  file: string,
  n: number,
  distinct: number,
  shape: number[],
  c: { classes: number; scale: number },
  seed: number,
): string {
  const r = seeded(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const xs = Array.from({ length: distinct * size }, () => (2 * r() - 1) * c.scale);
  const ys = Array.from({ length: distinct }, () => Math.floor(r() * c.classes));
  const x = Array.from({ length: n * size }, (_, i) => xs[i % (distinct * size)]!);
  const y = Array.from({ length: n }, (_, i) => ys[i % distinct]!);
  const path = join(tmp.dir, file);
  writeFileSync(
    path,
    zipSync({ "x.npy": npyBytes("<f4", [n, ...shape], x), "y.npy": npyBytes("<i8", [n], y) }),
  );
  return path;
}

describe("imported models: QAT on synthetic data, then int8 export with parity", () => {
  for (const c of CASES) {
    test(`${c.file}: 20 QAT steps, loss decreases, export passes parity`, { timeout: 600_000 }, async () => {
      const name = c.file.replace(/\.onnx$/, "");
      const data = randomNpz(`${name}.train.npz`, 24, c.batch, c.shape, c, 17);
      const losses: number[] = [];
      const run = join(tmp.dir, name);
      await train(
        {
          from: join(MODELS, c.file),
          data,
          epochs: 100,
          maxSteps: 20,
          batchSize: c.batch,
          threads: 2,
          optimizer: { kind: "adam" },
          schedule: { kind: "constant", lr: c.lr },
          qat: { preset: "ort-cpu", calibrationBatches: 2 },
        },
        { out: run, hooks: { onStep: (e) => losses.push(e.loss) } },
      );
      const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
      const msg = `${c.file}: ${losses.map((l) => l.toFixed(3)).join(" ")}`;
      console.log(msg);
      expect(losses.length, msg).toBe(20);
      expect(losses.every(Number.isFinite), msg).toBe(true);
      expect(mean(losses.slice(-4)), msg).toBeLessThan(0.8 * mean(losses.slice(0, 4)));

      // parity on random inputs the model never saw
      const check = await openDataset(randomNpz(`${name}.check.npz`, 40, 40, c.shape, c, 99), {
        split: "train",
      });
      const out = join(tmp.dir, `${name}.int8.onnx`);
      const ex = await exportToFile(run, out, { data: check, threads: 2 });
      const p = ex.parity;
      const line =
        `${c.file}: parity on ${p.samples} random inputs: agreement ${(100 * p.agreement).toFixed(2)}%, ` +
        p.outputs.map((o) => `${o.name} ${(100 * o.withinOneStep).toFixed(2)}% within one step`).join(", ");
      console.log(line);
      expect(p.passed, line).toBe(true);
      expect(ex.written, line).toBe(true);
    });
  }
});
