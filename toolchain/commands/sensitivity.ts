import { Command, Option } from "commander";
import { sensitivityRun } from "../../src/pipeline/sensitivity.js";
import { OBSERVER_KINDS, type ObserverKind } from "../../src/quant/observer.js";
import { presetNames } from "../../src/quant/qconfig.js";
import { formatSensitivity } from "../../src/quant/sensitivity.js";
import { count, optionalNumber, parseNumber, positiveInt } from "../args.js";
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
    .argument("<run>", "a trained run folder (from qat train, a zoo model or one imported with --from)")
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
      const { report, out } = await sensitivityRun({
        run,
        dataDir: f.dataDir,
        out: f.out,
        preset: f.preset,
        observer: f.observer,
        calibrationBatches: positiveInt(f.batches, "--batches"),
        evalLimit: count(f.evalLimit, "--eval-limit"),
        threads: count(f.threads, "--threads") || undefined,
        target: optionalNumber(f.target, "--target", { min: 0, max: 1 }),
        maxDrop: parseNumber(f.maxDrop, "--max-drop", { min: 0 }) / 100,
        log: (m) => process.stderr.write(`${m}\n`),
      });
      emit(f, `${formatSensitivity(report)}\nwrote ${out} (qat report reads it)`, report);
    });
}
