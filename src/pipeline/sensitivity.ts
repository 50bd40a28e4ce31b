/**
 * Per-layer quantization sensitivity of a trained run, written into the run folder (sensitivity.json) where
 * `qat report` finds it. The analysis itself is src/quant/sensitivity.ts.
 */
import { type SensitivityOptions, type SensitivityReport, sensitivity } from "../quant/sensitivity.js";
import { RunFolder } from "../train/run-folder.js";
import { writeFileAtomic } from "../util/atomic.js";
import { openFloatRun } from "./float-run.js";

export interface SensitivityRunOptions extends SensitivityOptions {
  /** The trained run folder (float, zoo or imported model). */
  run: string;
  /** Folder searched first for the dataset (default: the run's). */
  dataDir?: string;
  /** Where the JSON report goes (default <run>/sensitivity.json). */
  out?: string;
}

/** Analyse a trained run's per-layer sensitivity and write the report; returns it and where it went. */
export async function sensitivityRun(
  opts: SensitivityRunOptions,
): Promise<{ report: SensitivityReport; out: string }> {
  const fr = await openFloatRun(opts.run, { dataDir: opts.dataDir });
  const report = await sensitivity(fr.net, fr.train, fr.test, opts);
  const out = opts.out ?? new RunFolder(opts.run).path("sensitivity");
  writeFileAtomic(out, `${JSON.stringify(report, null, 2)}\n`);
  return { report, out };
}
