import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { Command, Option } from "commander";
import { openDataset } from "../../src/data/open.js";
import { importModel } from "../../src/nn/import/index.js";
import { loadModel, modelOf } from "../../src/onnx/codec.js";
import { evaluateModel } from "../../src/train/evaluate.js";
import { RUN_FILES } from "../../src/train/run-folder.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";
import { inputConvention } from "./train.js";

interface EvalFlags {
  from?: string;
  inputScale?: string;
  inputMean?: string;
  inputStd?: string;
  data: string;
  dataDir?: string;
  split: "train" | "test";
  batchSize: string;
  limit: string;
  threads: string;
  json: boolean;
}

/** `qat eval <model.onnx | run folder> --data <dataset>`: accuracy, per-class accuracy, confusion matrix. */
export function evalCommand(): Command {
  return new Command("eval")
    .description("evaluate an ONNX classifier (or a run folder's model.onnx) on a dataset")
    .argument("[model]", "an .onnx file or a run folder")
    .option(
      "--from <model.onnx>",
      "import this float ONNX model first (any batch, input convention flags below)",
    )
    .option("--input-scale <s>", "with --from: multiply the dataset's stored values by s before the model")
    .option("--input-mean <m,...>", "with --from: then subtract these per-channel means")
    .option("--input-std <s,...>", "with --from: then divide by these per-channel standard deviations")
    .requiredOption("--data <dataset>", "a named dataset (mnist, fashion-mnist, cifar10) or a path")
    .option("--data-dir <dir>", "folder searched first for a named dataset")
    .addOption(new Option("--split <split>", "split of the data").choices(["train", "test"]).default("test"))
    .option("--batch-size <n>", "batch size (a model with a fixed batch uses its own)", "64")
    .option("--limit <n>", "evaluate on at most this many samples (0: all)", "0")
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (target: string | undefined, f: EvalFlags) => {
      if ((target === undefined) === (f.from === undefined))
        throw new UsageError("give either a model (an .onnx file or a run folder) or --from <model.onnx>");
      const input = inputConvention(f);
      if (input && !f.from)
        throw new UsageError(
          "--input-scale, --input-mean and --input-std apply to a model given with --from",
        );
      const given = (f.from ?? target)!;
      const file = existsSync(given) && statSync(given).isDirectory() ? join(given, RUN_FILES.model) : given;
      if (!existsSync(file)) throw new UsageError(`${file} not found: give an .onnx file or a run folder`);
      // --from: the model as qat imports it for training (dynamic batch, float32, the input convention in front)
      const model = f.from ? modelOf(importModel(file, { input }).net.eval) : loadModel(file);
      const ds = await openDataset(f.data, { dataDir: f.dataDir, split: f.split });
      const m = await evaluateModel(model, ds, {
        batchSize: Number(f.batchSize),
        limit: Number(f.limit),
        threads: Number(f.threads) || undefined,
      });
      const names = ds.classNames ?? Array.from({ length: ds.numClasses }, (_, i) => String(i));
      const lines = [
        `${file} on ${ds.name} (${f.split}, ${m.count} samples): accuracy ${(100 * m.accuracy).toFixed(2)}%, top-5 ${(100 * m.top5Accuracy).toFixed(2)}%`,
        "",
        "class        accuracy",
        ...m
          .perClass()
          .map((a, c) => `${names[c]!.padEnd(12)} ${Number.isNaN(a) ? "  n/a" : `${(100 * a).toFixed(2)}%`}`),
        "",
        "confusion (rows: true class, columns: predicted)",
        ...m.confusion.map((row) => row.map((v) => String(v).padStart(5)).join("")),
      ];
      emit(f, lines.join("\n"), { model: file, dataset: ds.name, split: f.split, ...m.toJSON() });
    });
}
