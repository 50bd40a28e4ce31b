import { Command, Option } from "commander";
import { evaluateFile } from "../../src/pipeline/evaluate.js";
import { count, positiveInt } from "../args.js";
import { UsageError } from "../errors.js";
import { inputConvention } from "../flags.js";
import { emit } from "../output.js";
import { evalDetectorCli } from "./export-detect.js";

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
      // a YOLO folder: COCO mAP of the detector on its val split
      if (target !== undefined && (await evalDetectorCli(target, f))) return;
      const input = inputConvention(f);
      if (input && !f.from)
        throw new UsageError(
          "--input-scale, --input-mean and --input-std apply to a model given with --from",
        );
      const r = await evaluateFile({
        model: (f.from ?? target)!,
        imported: f.from !== undefined,
        input,
        data: f.data,
        dataDir: f.dataDir,
        split: f.split,
        batchSize: positiveInt(f.batchSize, "--batch-size"),
        limit: count(f.limit, "--limit"),
        threads: count(f.threads, "--threads"),
      });
      const m = r.metrics;
      const lines = [
        `${r.file} on ${r.dataset} (${f.split}, ${m.count} samples): accuracy ${(100 * m.accuracy).toFixed(2)}%, top-5 ${(100 * m.top5Accuracy).toFixed(2)}%`,
        "",
        "class        accuracy",
        ...m
          .perClass()
          .map(
            (a, c) =>
              `${r.classNames[c]!.padEnd(12)} ${Number.isNaN(a) ? "  n/a" : `${(100 * a).toFixed(2)}%`}`,
          ),
        "",
        "confusion (rows: true class, columns: predicted)",
        ...m.confusion.map((row) => row.map((v) => String(v).padStart(5)).join("")),
      ];
      emit(f, lines.join("\n"), { model: r.file, dataset: r.dataset, split: f.split, ...m.toJSON() });
    });
}
