/**
 * Peak resident memory of qat's training step, in a fresh process: the peer of bench/torch/step_rss.py.
 *
 *   node dist/bench/step-rss.js <model> <batch> <threads> <float|qat>
 *
 * Builds the step (qat: the ort-cpu preset after its observer phase, as bench/qat-throughput.ts times it), runs 5
 * steps (the loss of bench/qat-throughput.ts: MSE against random targets for tiny-det and blazeface) and prints
 * {"model", "batch", "kind", "base_mb", "peak_mb"}: peak RSS before building and after the steps.
 */
import { QatTraining } from "../src/quant/qat-train.js";
import { buildTrainingStep, TrainingRunner } from "../src/train/step.js";
import { benchNet } from "./bench-models.js";
import { stepBatches } from "./random-data.js";

const peakMb = (): number => Math.round(process.resourceUsage().maxRSS / 1024);

async function main(): Promise<void> {
  const [model, batchArg, threadsArg, kind] = process.argv.slice(2);
  if (!model || !["float", "qat"].includes(kind ?? ""))
    throw new Error("usage: step-rss.js <model> <batch> <threads> <float|qat>");
  const batch = Number(batchArg);
  const threads = Number(threadsArg);
  const base = peakMb();
  const { net, data, loss } = benchNet(model);
  // the loss of bench/qat-throughput.ts: MSE on float targets for tiny-det and blazeface, else cross-entropy
  const opt = { optimizer: { kind: "sgd" as const, momentum: 0.9 }, loss };
  let runner: TrainingRunner;
  if (kind === "qat") {
    const q = await QatTraining.create(net, { preset: "ort-cpu", calibrationBatches: 2 }, data, {
      batchSize: Math.min(batch, 64),
      threads,
    });
    runner = await TrainingRunner.create(q.trainingStep(1_000_000, opt), { threads, ...q.sessionOptions });
  } else runner = await TrainingRunner.create(buildTrainingStep(net, opt), { threads });
  const { xs, ys } = stepBatches(net, batch, 3, loss?.targetShape[0]);
  for (let i = 0; i < 5; i++) await runner.run(xs[i % 4]!, ys[i % 4]!, 0.001);
  await runner.release();
  console.log(JSON.stringify({ model, batch, kind, base_mb: base, peak_mb: peakMb() }));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 2;
});
