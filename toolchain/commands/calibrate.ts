import { Command, Option } from "commander";
import { calibrateRun } from "../../src/pipeline/calibrate.js";
import { OBSERVER_KINDS, type ObserverKind } from "../../src/quant/observer.js";
import { presetNames } from "../../src/quant/qconfig.js";
import { count, positiveInt } from "../args.js";
import { layerBits, layerList } from "../flags.js";
import { emit } from "../output.js";
import { calibrateDetectorCli } from "./export-detect.js";

interface CalibrateFlags {
  preset: string;
  observer?: ObserverKind;
  batches: string;
  keepFloat?: string;
  weightBits?: string;
  dataDir?: string;
  evalLimit: string;
  threads: string;
  out?: string;
  json: boolean;
}

/**
 * `qat calibrate <float run>`: post-training quantization. Calibrates every quantization point with an observer,
 * evaluates the fake-quantized model and writes it (model.onnx with `<tensor>.scale`/`.zero_point` initializers
 * and Q/DQ pairs; checkpoint.onnx with the placement table) so `qat train --qat --init <folder>` starts from it.
 */
export function calibrateCommand(): Command {
  return new Command("calibrate")
    .description(
      "post-training quantization of a float run: calibrate scales with an observer, evaluate, write the model",
    )
    .argument("<run>", "a trained run folder (from qat train, a zoo model or one imported with --from)")
    .addOption(new Option("--preset <name>", "qconfig preset").choices(presetNames()).default("ort-cpu"))
    .addOption(
      new Option("--observer <kind>", "activation observer (default: the preset's)").choices(OBSERVER_KINDS),
    )
    .option("--batches <n>", "calibration batches of 64 training samples", "32")
    .option("--keep-float <layers>", "comma-separated layers left in float")
    .option("--weight-bits <layer=bits,...>", "per-layer weight bits, e.g. conv1=8,fc=4")
    .option("--data-dir <dir>", "folder searched first for the dataset")
    .option("--eval-limit <n>", "evaluate on at most this many test samples (0: all)", "0")
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option(
      "--out <folder>",
      "where to write model.onnx and checkpoint.onnx (default <run>/calibrated-<preset>)",
    )
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (run: string, f: CalibrateFlags) => {
      if (await calibrateDetectorCli(run, f)) return;
      const r = await calibrateRun({
        run,
        preset: f.preset,
        observer: f.observer,
        batches: positiveInt(f.batches, "--batches"),
        keepFloat: layerList(f.keepFloat),
        weightBits: layerBits(f.weightBits),
        dataDir: f.dataDir,
        evalLimit: count(f.evalLimit, "--eval-limit"),
        threads: count(f.threads, "--threads"),
        out: f.out,
      });
      emit(
        f,
        `float ${(100 * r.float_accuracy).toFixed(2)}%  PTQ ${r.preset} ${(100 * r.ptq_accuracy).toFixed(2)}% (${(100 * (r.ptq_accuracy - r.float_accuracy)).toFixed(2)} pt)\n` +
          `calibrated model: ${r.model}; start QAT from it with qat train --qat ${r.preset} --init ${r.out}`,
        {
          run: r.run,
          out: r.out,
          preset: r.preset,
          observer: r.observer,
          float_accuracy: r.float_accuracy,
          ptq_accuracy: r.ptq_accuracy,
          points: r.points,
        },
      );
    });
}
