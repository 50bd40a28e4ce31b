import { join } from "node:path";
import { Command, Option } from "commander";
import { openFloatRun } from "../../src/pipeline/float-run.js";
import { OBSERVER_KINDS, type ObserverKind } from "../../src/quant/observer.js";
import { presetNames } from "../../src/quant/qconfig.js";
import { formatSensitivity, sensitivity } from "../../src/quant/sensitivity.js";
import { REPORT_FILES } from "../../src/report/report.js";
import { writeFileAtomic } from "../../src/util/atomic.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";

interface SensitivityFlags {
  preset: string;
  observer?: ObserverKind;
  batches: string;
  target?: string;
  maxDrop: string;
  dataDir?: string;
  evalLimit: string;
  threads: string;
  out?: string;
  json: boolean;
}

/** `qat sensitivity <float run>`: per-layer quantization sensitivity and a mixed-precision qconfig proposal. */
export function sensitivityCommand(): Command {
  return new Command("sensitivity")
    .description(
      "quantize one layer at a time, print the accuracy deltas and propose a mixed-precision qconfig",
    )
    .argument("<run>", "a float run folder (from qat train)")
    .addOption(
      new Option("--preset <name>", "qconfig preset to analyse").choices(presetNames()).default("ort-cpu"),
    )
    .addOption(
      new Option("--observer <kind>", "activation observer (default: the preset's)").choices(OBSERVER_KINDS),
    )
    .option("--batches <n>", "calibration batches of 64 training samples", "32")
    .option("--target <accuracy>", "accuracy (0–1) the proposal must reach (default: float − --max-drop)")
    .option("--max-drop <pt>", "accepted accuracy drop in percentage points", "0.5")
    .option("--data-dir <dir>", "folder searched first for the dataset")
    .option("--eval-limit <n>", "evaluate on at most this many test samples (0: all)", "0")
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option("--out <file>", "where the JSON report goes, for `qat report` (default: <run>/sensitivity.json)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (run: string, f: SensitivityFlags) => {
      const maxDrop = Number(f.maxDrop);
      if (!Number.isFinite(maxDrop) || maxDrop < 0)
        throw new UsageError(`--max-drop expects a number ≥ 0, got "${f.maxDrop}"`);
      const target = f.target === undefined ? undefined : Number(f.target);
      if (target !== undefined && !(target >= 0 && target <= 1))
        throw new UsageError(`--target expects an accuracy in [0, 1], got "${f.target}"`);
      const fr = await openFloatRun(run, { dataDir: f.dataDir });
      const report = await sensitivity(fr.net, fr.train, fr.test, {
        preset: f.preset,
        observer: f.observer,
        calibrationBatches: Number(f.batches),
        evalLimit: Number(f.evalLimit),
        threads: Number(f.threads) || undefined,
        target,
        maxDrop: maxDrop / 100,
        log: (m) => process.stderr.write(`${m}\n`),
      });
      const out = f.out ?? join(run, REPORT_FILES.sensitivity);
      writeFileAtomic(out, `${JSON.stringify(report, null, 2)}\n`);
      emit(f, `${formatSensitivity(report)}\nwrote ${out} (qat report reads it)`, report);
    });
}
