import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { importModel } from "../../src/nn/import/index.js";
import { i64, numel } from "../../src/onnx/tensor.js";
import { buildTrainingStep, TrainingRunner } from "../../src/train/step.js";
import { MODELS } from "../helpers/paths.js";
import { seeded } from "../helpers/random.js";
import { randomF32 } from "./helpers.js";

/**
 * Pretrained models from other tools import and train: 20 Adam steps on a fixed small set of random inputs with
 * random labels within the model's classes (a set this small is learnable: the loss must go down).
 */
const CASES: { file: string; batch: number; scale: number; lr: number }[] = [
  { file: "mnist-zoo-2018-opset1.onnx", batch: 8, scale: 255, lr: 1e-3 },
  { file: "cifar10-imageclassifier.onnx", batch: 8, scale: 1, lr: 1e-3 },
  { file: "iris-mlp.onnx", batch: 8, scale: 4, lr: 1e-2 },
  { file: "squeezenet1.0-fp16.onnx", batch: 2, scale: 50, lr: 1e-4 },
];

describe("imported models train on synthetic data", () => {
  for (const c of CASES) {
    test(`${c.file}: 20 steps, loss decreases`, async () => {
      const { net, report } = importModel(join(MODELS, c.file));
      const classes = report.output.classes;
      const x = randomF32([c.batch, ...net.inputShape], 17, c.scale);
      const r = seeded(23);
      const y = i64(
        [c.batch],
        Array.from({ length: c.batch }, () => Math.floor(r() * classes)),
      );
      const runner = await TrainingRunner.create(buildTrainingStep(net, { optimizer: { kind: "adam" } }));
      const losses: number[] = [];
      try {
        for (let i = 0; i < 20; i++) losses.push((await runner.run(x, y, c.lr)).loss);
      } finally {
        await runner.release();
      }
      const msg = `${c.file} (${numel(net.inputShape)} inputs, ${classes} classes): ${losses.map((l) => l.toFixed(3)).join(" ")}`;
      console.log(msg);
      expect(losses.every(Number.isFinite), msg).toBe(true);
      const tail = (losses[17]! + losses[18]! + losses[19]!) / 3;
      expect(tail, msg).toBeLessThan(0.8 * losses[0]!);
      expect(net.params.length, msg).toBe(report.params.trainable.length);
    });
  }
});
