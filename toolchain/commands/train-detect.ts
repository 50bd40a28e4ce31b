import type { TrainConfig } from "../../src/pipeline/config.js";
import { isDetectionRun } from "../../src/pipeline/detect-run.js";
import { isDetectionData, trainDetector } from "../../src/pipeline/detect-trainer.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";
import { trainProgress } from "../progress.js";

/**
 * `qat train --data <YOLO folder>`: train a detector (tiny-det by default) when the data is a detection set; returns
 * false (nothing done) for any other data, which the classification trainer handles.
 */
export async function trainDetectorCli(
  settings: Partial<TrainConfig>,
  flags: { out?: string; resume?: string; json: boolean },
): Promise<boolean> {
  if (flags.resume) {
    if (isDetectionRun(flags.resume))
      throw new UsageError(
        `${flags.resume} is a detection run: --resume is not supported for detectors yet; start a new run (--init ${flags.resume} starts from its weights)`,
      );
    return false;
  }
  if (!isDetectionData(settings.data)) return false;
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  const out = flags.out ?? `runs/${settings.model ?? "tiny-det"}-${stamp}`;
  const progress = trainProgress();
  try {
    const r = await trainDetector(settings, { out, hooks: progress });
    progress.stop();
    const pct = (v: number) => (100 * v).toFixed(2);
    emit(
      flags,
      `val mAP50-95 ${pct(r.map)}, mAP50 ${pct(r.map50)}, mAP75 ${pct(r.map75)} after ${r.steps} steps ` +
        `(best mAP50-95 ${pct(r.best_map)} at epoch ${r.best_epoch}), ${Math.round(r.samples_per_s)} samples/s, ` +
        `${r.seconds.toFixed(1)} s\nrun folder: ${r.run}`,
      r,
    );
  } finally {
    progress.stop();
  }
  return true;
}
