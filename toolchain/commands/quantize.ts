import { basename, dirname, join } from "node:path";
import { Command, Option } from "commander";
import {
  OPTIONAL_STAGES,
  type Preprocess,
  QuantizeError,
  type QuantizeResult,
  quantizeModel,
} from "../../src/pipeline/quantize/index.js";
import { presetNames } from "../../src/quant/qconfig.js";
import { writeQuantizeSummary } from "../../src/report/quantize-summary.js";
import { count, parseChoice, parseList, parseNumber, parseNumberList, positiveInt } from "../args.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";

interface QuantizeFlags {
  data: string;
  labels: string;
  dataDir?: string;
  maxDrop: string;
  preset: string;
  inputSize?: string;
  resize: boolean;
  letterbox: boolean;
  scale?: string;
  mean?: string;
  std?: string;
  layout?: "nchw" | "nhwc";
  out?: string;
  stages?: string;
  evalSamples: string;
  calibrationSamples: string;
  adaroundIterations: string;
  cle: boolean;
  distillSteps: string;
  seed: string;
  threads: string;
  json: boolean;
}

/** "224", "224x224" or "192x256" (H×W). */
function inputSize(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const parts = v.toLowerCase().split("x");
  if (parts.length > 2) throw new UsageError(`--input-size expects H or HxW (e.g. 224x224), got "${v}"`);
  const [h, w] = parts.map((p) => parseNumber(p, "--input-size", { integer: true, min: 1 }));
  return [h!, w ?? h!];
}

function preprocess(f: QuantizeFlags): Preprocess {
  if (f.resize && f.letterbox) throw new UsageError("give --resize or --letterbox, not both");
  return {
    inputSize: inputSize(f.inputSize),
    fit: f.letterbox ? "letterbox" : "resize",
    scale: f.scale === undefined ? undefined : parseNumber(f.scale, "--scale", { above: 0 }),
    mean: f.mean === undefined ? undefined : parseNumberList(f.mean, "--mean"),
    std: f.std === undefined ? undefined : parseNumberList(f.std, "--std", { above: 0 }),
    layout: f.layout,
  };
}

function summary(r: QuantizeResult, report: string): string {
  const rows = r.stages.map(
    (s) =>
      `  ${s.stage.padEnd(16)} ${s.status === "skipped" ? "skipped".padEnd(8) : (s.metric === null ? "" : s.metric.toFixed(2)).padEnd(8)} ` +
      `${s.drop === null ? "" : `drop ${s.drop.toFixed(2)}`.padEnd(11)} ${s.seconds.toFixed(1).padStart(6)} s  ${s.changed}`,
  );
  return [
    `${r.metric.name} (${r.metric.labelled ? "labels" : "no labels"}), budget: drop ≤ ${r.maxDrop} pt from ${r.reference.toFixed(2)}`,
    ...rows,
    ...r.warnings.map((w) => `warning: ${w}`),
    `int8 model: ${r.files.model} (from stage ${r.exportedFrom}: ${r.final.toFixed(2)}, drop ${r.drop.toFixed(2)} pt)`,
    `stage log: ${r.files.stages}; summary: ${report}`,
  ].join("\n");
}

/** `qat quantize <model.onnx> --data <dataset | image folder>`: a thin shell over `quantizeModel()`. */
export function quantizeCommand(): Command {
  return new Command("quantize")
    .description(
      "quantize a float ONNX model you already ship to int8 within an accuracy budget: PTQ, CLE/AdaRound, QAT by distillation, mixed precision, export",
    )
    .argument("<model>", "the float .onnx model (its input and output names, shapes and layout are kept)")
    .requiredOption(
      "--data <dataset|folder>",
      "labelled data (mnist, a folder of class folders, .npz …) or a folder of unlabelled images",
    )
    .option(
      "--labels <auto|none|file>",
      "auto: use labels when the data has them; none: measure fidelity to the float model; or the labels .npy of a samples .npy",
      "auto",
    )
    .option("--data-dir <dir>", "folder searched first for a named dataset")
    .option("--max-drop <points>", "accepted drop from float, in points of the metric", "1")
    .addOption(new Option("--preset <name>", "qconfig preset").choices(presetNames()).default("ort-cpu"))
    .option(
      "--input-size <HxW>",
      "the model's input size (checked against the model; images are resized to it)",
    )
    .option("--resize", "stretch images to the input size (default)", false)
    .option("--letterbox", "keep the images' aspect ratio and pad to the input size", false)
    .option(
      "--scale <s>",
      "your preprocessing: multiply 0–255 pixel values by s first (e.g. 0.00392156862745098)",
    )
    .option("--mean <m,...>", "then subtract these (one, or one per channel)")
    .option("--std <s,...>", "then divide by these (one, or one per channel)")
    .addOption(
      new Option(
        "--layout <layout>",
        "where the input's channels are (default: read from the model)",
      ).choices(["nchw", "nhwc"]),
    )
    .option(
      "--out <folder>",
      "where model.int8.onnx, stages.json and report.html go (default <model>-int8 beside it)",
    )
    .option(
      "--stages <list>",
      `optional stages the run may use after PTQ (default ${OPTIONAL_STAGES.join(",")}); leave one out to never use it`,
    )
    .option("--eval-samples <n>", "held-out samples the metric is measured on", "1000")
    .option("--calibration-samples <n>", "calibration and training samples", "1024")
    .option("--adaround-iterations <n>", "AdaRound steps per layer", "1000")
    .option("--no-cle", "no cross-layer equalization in the better-PTQ stage (to see what it brings)")
    .option("--distill-steps <n>", "QAT-by-distillation steps of 32 samples", "500")
    .option("--seed <n>", "seed of data order, crops and training", "0")
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (model: string, f: QuantizeFlags) => {
      const out = f.out ?? join(dirname(model), `${basename(model).replace(/\.onnx$/i, "")}-int8`);
      const r = await quantizeModel({
        model,
        data: f.data,
        labels: f.labels,
        dataDir: f.dataDir,
        preprocess: preprocess(f),
        preset: f.preset,
        maxDrop: parseNumber(f.maxDrop, "--max-drop", { min: 0 }),
        out,
        stages:
          f.stages === undefined
            ? undefined
            : parseList(f.stages, "--stages", (v, flag) => parseChoice(v, flag, OPTIONAL_STAGES)),
        evalSamples: positiveInt(f.evalSamples, "--eval-samples"),
        calibrationSamples: positiveInt(f.calibrationSamples, "--calibration-samples"),
        adaroundIterations: positiveInt(f.adaroundIterations, "--adaround-iterations"),
        cle: f.cle,
        distillSteps: positiveInt(f.distillSteps, "--distill-steps"),
        seed: count(f.seed, "--seed"),
        threads: count(f.threads, "--threads") || undefined,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      const report = await writeQuantizeSummary(r);
      emit(f, summary(r, report), { ...r, report });
      if (!r.withinBudget) {
        throw new QuantizeError(
          `the budget of ${r.maxDrop} pt was not reached: the best model (stage ${r.exportedFrom}) loses ${r.drop.toFixed(2)} pt ` +
            `(${r.final.toFixed(2)} against float ${r.reference.toFixed(2)}); it was written to ${r.files.model}. ` +
            "Allow a larger --max-drop, give more calibration data, or try another --preset",
          1,
        );
      }
    });
}
