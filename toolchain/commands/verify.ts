import { existsSync } from "node:fs";
import { Command, Option } from "commander";
import { ExportError } from "../../src/export/errors.js";
import { EXPORT_META_KEY } from "../../src/export/export.js";
import { checkParity, EXACT_HOST_CONFIG } from "../../src/export/parity.js";
import { loadQatSource } from "../../src/export/source.js";
import { loadModel, modelOf } from "../../src/onnx/codec.js";
import { WORKING_OPSET } from "../../src/onnx/opset/working.js";
import { emit } from "../output.js";
import { CheckFailed, count, formatParity, fraction, parityData, parityJson } from "./export.js";

interface VerifyFlags {
  against?: string;
  data?: string;
  dataDir?: string;
  split: "train" | "test";
  limit: string;
  minAgreement: string;
  minWithinStep: string;
  threads: string;
  exact: boolean;
  json: boolean;
}

/** `qat verify <model.int8.onnx> --data ...`: the parity check of `qat export`, on an exported file. */
export function verifyCommand(): Command {
  return new Command("verify")
    .exitOverride()
    .description(
      "run an exported int8 model in ONNX Runtime and its QAT simulation on a dataset and compare them",
    )
    .argument("<model>", "an int8 .onnx written by qat export")
    .option(
      "--against <run>",
      "the QAT run folder or checkpoint.onnx it came from (default: the one its metadata names)",
    )
    .option("--data <dataset>", "a named dataset or a path (default: the run's dataset)")
    .option("--data-dir <dir>", "folder searched first for a named dataset")
    .addOption(new Option("--split <split>", "split of the data").choices(["train", "test"]).default("test"))
    .option("--limit <n>", "check at most this many samples (0: all)", "0")
    .option("--min-agreement <f>", "least top-1 agreement with the simulation", "0.999")
    .option("--min-within-step <f>", "least share of outputs within one quantization step", "0.99")
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option(
      "--no-exact",
      "run the int8 model with ORT default session options (x86 without VNNI: saturating u8·s8 kernels)",
    )
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (file: string, f: VerifyFlags) => {
      const model = loadModel(file);
      let against = f.against;
      if (!against) {
        const raw = model.metadata[EXPORT_META_KEY];
        if (!raw)
          throw new ExportError(
            `no ${EXPORT_META_KEY} metadata: not exported by qat export; give --against <run folder>`,
            { file },
          );
        against = (JSON.parse(raw) as { source?: { checkpoint?: string } }).source?.checkpoint;
        if (!against || !existsSync(against)) {
          throw new ExportError(
            `the checkpoint it was exported from (${against}) is not there: give --against <run folder>`,
            { file },
          );
        }
      }
      const src = loadQatSource(against);
      const data = await parityData(f, src);
      const p = await checkParity(model, modelOf(src.graph, { "": WORKING_OPSET }), {
        data,
        limit: count(f.limit, "--limit"),
        threads: count(f.threads, "--threads") || undefined,
        thresholds: {
          agreement: fraction(f.minAgreement, "--min-agreement"),
          withinOneStep: fraction(f.minWithinStep, "--min-within-step"),
        },
        hostConfig: f.exact ? { ...EXACT_HOST_CONFIG } : {},
      });
      emit(f, [`${file} against ${src.file}`, ...formatParity(p)].join("\n"), {
        model: file,
        against: src.file,
        ...parityJson(p),
      });
      if (!p.passed) throw new CheckFailed(`parity check failed:\n  ${p.failures.join("\n  ")}`);
    });
}
