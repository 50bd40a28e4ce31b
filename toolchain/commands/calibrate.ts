import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Command, Option } from "commander";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { cloneGraph } from "../../src/onnx/ir.js";
import { WORKING_OPSET } from "../../src/onnx/opset/working.js";
import { openFloatRun } from "../../src/pipeline/float-run.js";
import { calibrate } from "../../src/quant/calibrate.js";
import { OBSERVER_KINDS, type ObserverKind } from "../../src/quant/observer.js";
import { placementTable, placeQuant } from "../../src/quant/placement.js";
import { applyQuant } from "../../src/quant/prepare.js";
import { presetNames, qconfigFrom } from "../../src/quant/qconfig.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { evaluate } from "../../src/train/evaluate.js";
import { EvalRunner } from "../../src/train/step.js";
import { writeFileAtomic } from "../../src/util/atomic.js";
import { emit } from "../output.js";
import { parseLayerBits } from "./train.js";

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
    .argument("<run>", "a float run folder (from qat train)")
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
      const threads = Number(f.threads) || undefined;
      const fr = await openFloatRun(run, { dataDir: f.dataDir });
      const qconfig = qconfigFrom(f.preset, {
        keepFloat: f.keepFloat
          ? f.keepFloat
              .split(",")
              .map((s) => s.trim())
              .filter(Boolean)
          : [],
        weightBits: parseLayerBits(f.weightBits),
      });
      const placement = placeQuant(fr.net, qconfig);
      const qparams = await calibrate(fr.net, placement, fr.train, {
        batches: Number(f.batches),
        batchSize: 64,
        seed: fr.config.seed,
        threads,
        observer: f.observer,
      });
      const q = applyQuant(fr.net, placement, qparams);
      const sessions = { threads, optimization: "basic" as const };
      const accuracy = async (net: typeof q) => {
        const ev = await EvalRunner.create(net, sessions);
        try {
          return (await evaluate(ev, fr.test, undefined, 256, Number(f.evalLimit))).accuracy;
        } finally {
          await ev.release();
        }
      };
      const floatAcc = await accuracy(fr.net);
      const ptq = await accuracy(q);
      const out = f.out ?? join(run, `calibrated-${f.preset}`);
      mkdirSync(out, { recursive: true });
      writeFileAtomic(
        join(out, "model.onnx"),
        encodeModel(modelOf(cloneGraph(q.eval), { "": WORKING_OPSET })),
      );
      const quant = {
        settings: { preset: f.preset, observer: f.observer ?? null },
        qconfig,
        placement: placementTable(placement),
      };
      saveCheckpoint(join(out, "checkpoint.onnx"), {
        graph: q.eval,
        state: new Map(),
        meta: { calibrated_from: run, quant },
      });
      const result = {
        run,
        out,
        preset: f.preset,
        observer: f.observer ?? "preset",
        float_accuracy: floatAcc,
        ptq_accuracy: ptq,
        points: placementTable(placement).length,
      };
      emit(
        f,
        `float ${(100 * floatAcc).toFixed(2)}%  PTQ ${f.preset} ${(100 * ptq).toFixed(2)}% (${(100 * (ptq - floatAcc)).toFixed(2)} pt)\n` +
          `calibrated model: ${join(out, "model.onnx")}; start QAT from it with qat train --qat ${f.preset} --init ${out}`,
        result,
      );
    });
}
