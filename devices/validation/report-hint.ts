/**
 * The `qat report` command line that renders a saved drift report: the run is the folder `npm run main` writes (the
 * model beside its qat/ run), else the simulation's run folder, else the run the export metadata records; `--int8`
 * names the model when the report would not find it in the run.
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { decodeModel } from "../../src/onnx/codec.js";
import { exportMetadata } from "../simulation.js";
import type { FleetReport } from "./report.js";

/** The run folder the report belongs to, when it can be told. */
function runOf(report: FleetReport, modelBytes: Uint8Array): string | undefined {
  if (report.simulation?.available) return dirname(report.simulation.source);
  try {
    const r = exportMetadata(decodeModel(modelBytes))?.source?.run;
    return typeof r === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

export function reportHint(
  report: FleetReport,
  modelPath: string,
  modelBytes: Uint8Array,
  saved: string,
): string {
  let run = runOf(report, modelBytes);
  const modelDir = resolve(dirname(modelPath));
  if (run) {
    const inside = relative(modelDir, resolve(run));
    if (inside && !inside.startsWith("..") && !isAbsolute(inside)) run = dirname(modelPath);
  }
  const found = run && resolve(run, "model.int8.onnx") === resolve(modelPath);
  return `qat report ${run ?? "<run>"} --device-report ${saved}${found ? "" : ` --int8 ${modelPath}`}`;
}
