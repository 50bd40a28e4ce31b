import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Command, Option } from "commander";
import { ExportError } from "../../src/export/errors.js";
import {
  type ExportFormat,
  type ExportTarget,
  exportToFile,
  FORMATS,
  TARGETS,
} from "../../src/export/export.js";
import { RunFolder } from "../../src/train/run-folder.js";
import { count, fraction } from "../args.js";
import { CheckFailed } from "../check-failed.js";
import { UsageError } from "../errors.js";
import { parityData } from "../flags.js";
import { formatParity, parityJson } from "../format.js";
import { emit } from "../output.js";
import { exportDetectorCli } from "./export-detect.js";

interface ExportFlags {
  out?: string;
  format: ExportFormat;
  target: ExportTarget;
  opset?: string;
  data?: string;
  dataDir?: string;
  split: "train" | "test";
  limit: string;
  minAgreement: string;
  minWithinStep: string;
  threads: string;
  latency: boolean;
  json: boolean;
}

/** `qat export <run | checkpoint.onnx> --out model.int8.onnx`: a thin shell over `exportToFile`. */
export function exportCommand(): Command {
  return new Command("export")
    .exitOverride()
    .description(
      "export a QAT run (or its checkpoint.onnx) to an int8 ONNX model and check it against the simulation in ONNX Runtime",
    )
    .argument("<source>", "a run folder of 'qat train --qat' or its checkpoint.onnx")
    .option(
      "--out <file>",
      "the int8 model to write, only when every check passed (default: model.int8.onnx beside the checkpoint)",
    )
    .addOption(
      new Option("--format <format>", "QDQ (Q/DQ pairs around float ops) or QOperator (integer ops)")
        .choices(FORMATS)
        .default("qdq"),
    )
    .addOption(new Option("--target <target>", "runtime profile").choices(TARGETS).default("ort-cpu"))
    .option("--opset <n>", "ai.onnx opset of the output, 13–21 (default 17; 21 for 4-bit weights)")
    .option("--data <dataset>", "parity-check data: a named dataset or a path (default: the run's dataset)")
    .option("--data-dir <dir>", "folder searched first for a named dataset")
    .addOption(
      new Option("--split <split>", "split of the parity data").choices(["train", "test"]).default("test"),
    )
    .option("--limit <n>", "check at most this many samples (0: all)", "0")
    .option("--min-agreement <f>", "least top-1 agreement with the simulation", "0.999")
    .option("--min-within-step <f>", "least share of outputs within one quantization step", "0.99")
    .option("--threads <n>", "ONNX Runtime threads (0: all cores)", "0")
    .option("--no-latency", "with --json: skip the latency measurement")
    .option("--json", "print one JSON object as the last line of stdout (sizes, parity, latency)", false)
    .action(async (source: string, f: ExportFlags) => {
      const opset = f.opset === undefined ? undefined : count(f.opset, "--opset");
      f.out ??= new RunFolder(
        existsSync(source) && statSync(source).isDirectory() ? source : dirname(source),
      ).path("int8");
      const folder = dirname(resolve(f.out));
      if (!existsSync(folder) || !statSync(folder).isDirectory()) {
        throw new UsageError(`--out ${f.out}: the folder ${folder} does not exist`);
      }
      // a detector: parity in detection terms too (mAP of the int8 file and the simulation, box agreement)
      if (await exportDetectorCli(source, f)) return;
      const thresholds = {
        agreement: fraction(f.minAgreement, "--min-agreement"),
        withinOneStep: fraction(f.minWithinStep, "--min-within-step"),
      };
      const r = await exportToFile(source, f.out, {
        format: f.format,
        target: f.target,
        opset,
        data: (src) => parityData(f, src),
        limit: count(f.limit, "--limit"),
        thresholds,
        threads: count(f.threads, "--threads") || undefined,
        latency: f.json && f.latency,
      });
      const lines = [
        `${r.source.file} → ${f.out} (${r.format}, target ${r.target}, opset ${r.opset})`,
        `  size: ${r.sizes.int8} bytes int8, ${r.sizes.float} bytes float (${(r.sizes.float / r.sizes.int8).toFixed(2)}×)`,
        ...(r.int4Weights.length ? [`  INT4 weights: ${r.int4Weights.join(", ")}`] : []),
        ...(r.qoperator
          ? [
              `  integer ops: ${Object.entries(r.qoperator.integerOps)
                .map(([k, v]) => `${k} ${v}`)
                .join(", ")}`,
            ]
          : []),
        ...r.warnings.map((w) => `warning: ${w}`),
        ...formatParity(r.parity),
      ];
      if (r.latency) {
        const l = r.latency;
        lines.push(
          `  ORT latency (median per run): batch 1 int8 ${l.int8.batch1!.toFixed(3)} ms vs float ${l.float.batch1!.toFixed(3)} ms; ` +
            `batch 64 int8 ${l.int8.batch64!.toFixed(3)} ms vs float ${l.float.batch64!.toFixed(3)} ms`,
        );
      }
      lines.push(r.written ? `wrote ${f.out}` : `nothing written: the parity check failed`);
      emit(f, lines.join("\n"), {
        source: r.source.file,
        out: f.out,
        written: r.written,
        format: r.format,
        target: r.target,
        opset: r.opset,
        sizes: { float_bytes: r.sizes.float, int8_bytes: r.sizes.int8, ratio: r.sizes.float / r.sizes.int8 },
        int4_weights: r.int4Weights,
        qoperator: r.qoperator ?? null,
        warnings: r.warnings,
        parity: parityJson(r.parity),
        latency_ms: r.latency ?? null,
      });
      if (!r.written)
        throw new CheckFailed(
          `parity check failed, ${f.out} not written:\n  ${r.parity.failures.join("\n  ")}`,
        );
    });
}

export { ExportError };
