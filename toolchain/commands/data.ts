import { Command } from "commander";
import { openCocoDataset } from "../../src/detect/coco.js";
import { verifyImages } from "../../src/detect/dataset.js";
import { generateMnistDetect } from "../../src/detect/mnist-detect.js";
import { type DetectionSummary, formatDetectionSummary, summarizeSplit } from "../../src/detect/summary.js";
import { openYoloDataset, type YoloSplit } from "../../src/detect/yolo.js";
import { count, parseChoice, parseList, parseNumber } from "../args.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";

interface SynthFlags {
  out: string;
  train: string;
  val: string;
  seed: string;
  dataDir?: string;
  force: boolean;
  json: boolean;
}

interface SummaryFlags {
  splits: string;
  images?: string;
  verify: boolean;
  json: boolean;
}

const SPLITS = ["train", "val", "test"] as const;

/** `qat data`: make and check detection datasets. */
export function dataCommand(): Command {
  const synth = new Command("synth")
    .description("generate a synthetic dataset")
    .addCommand(mnistDetectCommand());
  return new Command("data")
    .description("make and check detection datasets (YOLO layout, COCO JSON)")
    .addCommand(synth)
    .addCommand(summaryCommand());
}

/** `qat data synth mnist-detect --out <dir>`: the seeded MNIST detection set in the YOLO layout. */
function mnistDetectCommand(): Command {
  return new Command("mnist-detect")
    .description(
      "1–5 MNIST digits (12–48 px) and clutter on 96×96 canvases, written in the YOLO layout " +
        "(train from MNIST train, val from MNIST test); the same seed gives the same bytes",
    )
    .requiredOption("--out <dir>", "output folder (empty, or use --force to replace a set in it)")
    .option("--train <n>", "training images", "20000")
    .option("--val <n>", "validation images", "2000")
    .option("--seed <s>", "random seed (a whole number 0..4294967295)", "0")
    .option("--data-dir <dir>", "folder searched first for MNIST (else $QAT_DATA_DIR, the cache, a download)")
    .option("--force", "replace images/, labels/ and data.yaml of an earlier set in --out", false)
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (f: SynthFlags) => {
      const train = count(f.train, "--train");
      const val = count(f.val, "--val");
      const seed = parseNumber(f.seed, "--seed", { integer: true, min: 0, max: 0xffffffff });
      const started = Date.now();
      const summary = await generateMnistDetect({
        out: f.out,
        train,
        val,
        seed,
        overwrite: f.force,
        ...(f.dataDir !== undefined ? { dataDir: f.dataDir } : {}),
      });
      const seconds = (Date.now() - started) / 1000;
      const human = `wrote ${train + val} images to ${f.out} in ${seconds.toFixed(1)} s (seed ${seed})\n${formatDetectionSummary(summary)}`;
      emit(f, human, { out: f.out, seed, seconds, ...summary });
    });
}

/** `qat data summary <data.yaml | folder | coco.json>`: read a detection set, report its figures or its first error. */
function summaryCommand(): Command {
  return new Command("summary")
    .description(
      "read a YOLO-layout set (data.yaml or its folder) or a COCO JSON file and print its figures; " +
        "bad labels or images are reported with file and line (exit 2)",
    )
    .argument("<dataset>", "a data.yaml, the folder holding it, or a COCO .json annotation file")
    .option("--splits <list>", "YOLO splits to read (those in data.yaml by default)", "train,val")
    .option(
      "--images <dir>",
      "COCO: folder the images' file_name are relative to (default: the JSON's folder)",
    )
    .option("--verify", "decode every image, so a damaged one is reported now", false)
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action((dataset: string, f: SummaryFlags) => {
      const sets = dataset.toLowerCase().endsWith(".json")
        ? [
            {
              split: "all",
              set: openCocoDataset(dataset, f.images !== undefined ? { imageDir: f.images } : {}),
            },
          ]
        : parseList(f.splits, "--splits", (v, flag) => parseChoice(v, flag, SPLITS)).map(
            (split: YoloSplit) => ({
              split,
              set: openYoloDataset(dataset, split),
            }),
          );
      if (sets.length === 0) throw new UsageError("--splits names no split; give e.g. --splits train,val");
      const summary: DetectionSummary = { classNames: sets[0]!.set.classNames, splits: {} };
      for (const { split, set } of sets) {
        if (f.verify) verifyImages(set);
        summary.splits[split] = summarizeSplit(set.images, set.classNames.length);
      }
      emit(f, formatDetectionSummary(summary), { dataset, ...summary });
    });
}
