import { Command, Option } from "commander";
import { verifyExport } from "../../src/pipeline/verify.js";
import { count, fraction } from "../args.js";
import { CheckFailed } from "../check-failed.js";
import { parityData } from "../flags.js";
import { formatParity, parityJson } from "../format.js";
import { emit } from "../output.js";

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
      const { source, parity } = await verifyExport({
        model: file,
        against: f.against,
        data: (src) => parityData(f, src),
        limit: count(f.limit, "--limit"),
        threads: count(f.threads, "--threads") || undefined,
        thresholds: {
          agreement: fraction(f.minAgreement, "--min-agreement"),
          withinOneStep: fraction(f.minWithinStep, "--min-within-step"),
        },
        exact: f.exact,
      });
      emit(f, [`${file} against ${source.file}`, ...formatParity(parity)].join("\n"), {
        model: file,
        against: source.file,
        ...parityJson(parity),
      });
      if (!parity.passed) throw new CheckFailed(`parity check failed:\n  ${parity.failures.join("\n  ")}`);
    });
}
