/**
 * The main job on the bundled defaults, through the library API: train mnist-cnn on MNIST (from ../shared/data, or
 * QAT_DATA_DIR, or the download cache) into runs/main-<time>. Run with `npm run main`.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { train } from "../src/train/trainer.js";
import { trainProgress } from "../toolchain/progress.js";

async function main(): Promise<void> {
  const shared = join(process.cwd(), "..", "shared", "data");
  const out = join("runs", `main-${new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)}`);
  const progress = trainProgress();
  const result = await train(
    { model: "mnist-cnn", data: "mnist", dataDir: existsSync(shared) ? shared : undefined, epochs: 1, seed: 1 },
    { out, hooks: progress },
  );
  progress.stop();
  console.log(`trained ${result.steps} steps: test accuracy ${(100 * result.test_accuracy).toFixed(2)}%`);
  console.log(`run folder: ${result.run}`);
}

main().catch((e: Error) => {
  console.error(`main: ${e.message}`);
  process.exitCode = 1;
});
