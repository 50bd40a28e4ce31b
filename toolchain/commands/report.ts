import { Command } from "commander";
import { writeReport } from "../../src/report/index.js";
import { emit } from "../output.js";

interface ReportFlags {
  deviceReport?: string;
  int8?: string;
  sensitivity?: string;
  out?: string;
  json: boolean;
}

/** `qat report <run>`: a thin shell over `writeReport()` in src/report. */
export function reportCommand(): Command {
  return new Command("report")
    .description(
      "write one self-contained HTML report of a run: training curves, per-layer quantization, export parity, board drift, latency, model summary",
    )
    .argument("<run>", "a run folder of qat train, or runs/main-<time> of npm run main")
    .option(
      "--device-report <file>",
      "the JSON 'qat validate --json' printed (default <run>/device-report.json)",
    )
    .option("--int8 <model>", "the int8 model of 'qat export' (default <run>/model.int8.onnx)")
    .option(
      "--sensitivity <file>",
      "the JSON 'qat sensitivity --json' printed (default <run>/sensitivity.json)",
    )
    .option("--out <file>", "the HTML file (default <run>/report.html)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (run: string, f: ReportFlags) => {
      const r = await writeReport(run, {
        out: f.out,
        deviceReport: f.deviceReport,
        int8: f.int8,
        sensitivity: f.sensitivity,
      });
      const gaps = Object.entries(r.missing).map(([k, v]) => `  ${k}: not available (${v})`);
      emit(
        f,
        [`wrote ${r.out} (${(r.bytes / 1024).toFixed(0)} KiB, ${r.charts.length} charts)`, ...gaps].join(
          "\n",
        ),
        { out: r.out, bytes: r.bytes, charts: r.charts, missing: r.missing },
      );
    });
}
