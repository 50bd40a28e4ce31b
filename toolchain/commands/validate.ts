import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { Command, Option } from "commander";
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_LAYER_THRESHOLD,
  DEFAULT_TRT_ITERATIONS,
  formatDriftReport,
  formatFailures,
  RUNTIMES,
  type Runtime,
  validateOnDevices,
} from "../../devices/validate.js";
import { validateDetectOnDevices } from "../../devices/validation/detect.js";
import { formatDetectReport } from "../../devices/validation/detect-format.js";
import { writeDetectReport } from "../../src/report/detect-report.js";
import { count, optionalNumber, parseList, parseNumber, positiveInt } from "../args.js";
import { deviceSelection, registryFile, tensorRtOnly } from "../device-flags.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";

interface ValidateFlags {
  data: string;
  dataDir?: string;
  split?: "train" | "val" | "test";
  task?: "classify" | "detect";
  detectSpec?: string;
  html?: string;
  device?: string;
  all?: boolean;
  concurrency: string;
  limit: string;
  layers?: string | boolean;
  layerThreshold: string;
  simulation?: string | boolean;
  runtime: Runtime;
  trtexec?: string;
  trtIterations: string;
  maxDrift?: string;
  threads?: string;
  save?: string;
  json?: boolean;
}

/** What `qat validate --help` says about TensorRT. */
export const TENSORRT_NOTE =
  "--runtime tensorrt runs trtexec on the board (a Jetson with JetPack's TensorRT): it builds an engine from the " +
  "model's ONNX (int8 from the QDQ scales), feeds each batch with --loadInputs, reads the outputs back with " +
  "--exportOutput and takes the latency from its performance summary. It is UNVERIFIED on real Jetson hardware: " +
  "the tests drive a stand-in trtexec that implements the documented flags with onnxruntime.";

/** Some board drifted more than --max-drift, or could not be validated: exit 1 (the report was printed). */
export class ValidationFailed extends Error {
  override name = "ValidationFailed";
  readonly exitCode = 1;
}

/** --layers: absent, all (no list, or "all"), or tensor/node names. */
function layersFlag(value: string | boolean | undefined): string[] | "all" | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return "all";
  const names = parseList(value, "--layers");
  if (!names.length) throw new UsageError("--layers: give tensor names, or no list for all");
  return names;
}

function withOptions(cmd: Command): Command {
  return cmd
    .argument("<model>", "the .onnx file")
    .requiredOption("--data <dataset>", "a named dataset (mnist, fashion-mnist, cifar10) or a path")
    .option("--data-dir <dir>", "folder searched first for a named dataset")
    .addOption(
      new Option("--split <split>", "split of the data (default: test; detect: val)").choices([
        "train",
        "val",
        "test",
      ]),
    )
    .addOption(
      new Option(
        "--task <task>",
        "classify or detect (default: detect when --detect-spec is given or --data is a YOLO-layout folder or data.yaml)",
      ).choices(["classify", "detect"]),
    )
    .option(
      "--detect-spec <file>",
      "detect: the head spec (JSON, docs/detection.md); default: inferred from the model's outputs",
    )
    .option("--html <file>", "detect: also write the HTML report (PR curves, drawn detections) to this file")
    .option("--device <names>", "device names or URIs, comma-separated (default: the default device)")
    .option("--all", "every registered device", false)
    .option("--concurrency <n>", "boards validated at once", String(DEFAULT_CONCURRENCY))
    .option("--limit <n>", "evaluate on the first n samples (0: all)", "0")
    .option(
      "--layers [names]",
      "compare intermediate tensors too and name the first layer that diverges: no list or 'all' = every quantized activation, or tensor or node names, comma-separated",
    )
    .option(
      "--layer-threshold <steps>",
      "with --layers: a tensor diverges when host and board differ by more than this many quantization steps",
      String(DEFAULT_LAYER_THRESHOLD),
    )
    .option(
      "--simulation <run>",
      "the QAT run or checkpoint.onnx whose fake-quant simulation to run on the host (default: the one the model's export metadata records)",
    )
    .option("--no-simulation", "do not run the fake-quant simulation")
    .addOption(
      new Option(
        "--runtime <runtime>",
        "how the board runs the model: onnxruntime, or tensorrt (trtexec on a Jetson; unverified on real Jetson hardware)",
      )
        .choices(RUNTIMES)
        .default("onnxruntime"),
    )
    .option(
      "--trtexec <path>",
      "tensorrt: trtexec on the board (default /usr/src/tensorrt/bin/trtexec, else PATH)",
    )
    .option(
      "--trt-iterations <n>",
      "tensorrt: inference iterations per batch (latency = their median)",
      String(DEFAULT_TRT_ITERATIONS),
    )
    .option(
      "--max-drift <points>",
      "fail (exit 1) when host − board accuracy exceeds this many percentage points",
    )
    .option("--threads <n>", "ONNX Runtime threads on the board")
    .option("--save <file>", "also write the JSON report to this file (for `qat report --device-report`)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .addHelpText("after", `\n${TENSORRT_NOTE}`);
}

/** `qat validate MODEL --data D`: run on boards and on the host, report the drift; exit 1 above --max-drift. */
export function validateCommand(): Command {
  const cmd = new Command("validate").description(
    "validate a model on boards against the host and the fake-quant simulation: accuracy of each, drift, agreement, output and per-layer differences, latency, memory",
  );
  return withOptions(cmd).action(async (model: string, f: ValidateFlags, c: Command) => {
    if (taskOf(f) === "detect") return validateDetect(model, f, c);
    if (f.split === "val")
      throw new UsageError("--split val: classification sets have train and test splits");
    if (f.html) throw new UsageError("--html is for --task detect; classification reports: qat report");
    const maxDrift = optionalNumber(f.maxDrift, "--max-drift", { min: 0 });
    tensorRtOnly(f.runtime, {
      "--trtexec": f.trtexec !== undefined,
      "--trt-iterations": c.getOptionValueSource("trtIterations") === "cli",
    });
    const result = await validateOnDevices({
      model,
      data: f.data,
      dataDir: f.dataDir,
      split: f.split ?? "test",
      limit: count(f.limit, "--limit"),
      devices: deviceSelection(f.device, f.all),
      registry: registryFile(c),
      concurrency: positiveInt(f.concurrency, "--concurrency"),
      layers: layersFlag(f.layers),
      layerThreshold: parseNumber(f.layerThreshold, "--layer-threshold", { min: 0 }),
      simulation:
        typeof f.simulation === "string" ? f.simulation : f.simulation === false ? false : undefined,
      runtime: f.runtime,
      trtexec: f.trtexec,
      trtIterations: f.runtime === "tensorrt" ? positiveInt(f.trtIterations, "--trt-iterations") : undefined,
      maxDrift: maxDrift === undefined ? undefined : maxDrift / 100,
      threads: f.threads === undefined ? undefined : positiveInt(f.threads, "--threads"),
      save: f.save,
    });
    emit(f, formatDriftReport(result.report), result.report);
    if (result.saved || !f.json) process.stderr.write(`${result.next}\n`);
    if (result.report.exceeded) {
      const limit = maxDrift !== undefined ? ` (--max-drift ${maxDrift} pt)` : "";
      throw new ValidationFailed(`${formatFailures(result.report)}${limit}`);
    }
  });
}

/** Detect when asked, or when the spec or a YOLO-layout dataset says so. */
function taskOf(f: ValidateFlags): "classify" | "detect" {
  if (f.task) return f.task;
  if (f.detectSpec) return "detect";
  const d = f.data;
  const yolo =
    /\.ya?ml$/i.test(d) || (existsSync(d) && statSync(d).isDirectory() && existsSync(join(d, "data.yaml")));
  return yolo ? "detect" : "classify";
}

/** `qat validate --task detect`: host vs boards in mAP, agreement and latency; optional JSON and HTML reports. */
async function validateDetect(model: string, f: ValidateFlags, c: Command): Promise<void> {
  const maxDrift = optionalNumber(f.maxDrift, "--max-drift", { min: 0 });
  if (f.runtime !== "onnxruntime" || f.layers !== undefined || typeof f.simulation === "string")
    throw new UsageError(
      "--task detect runs ONNX Runtime on the boards; --runtime, --layers and --simulation are for classifiers",
    );
  const result = await validateDetectOnDevices({
    model,
    data: f.data,
    split: f.split ?? "val",
    limit: count(f.limit, "--limit"),
    spec: f.detectSpec,
    devices: deviceSelection(f.device, f.all),
    registry: registryFile(c),
    threads: f.threads === undefined ? undefined : positiveInt(f.threads, "--threads"),
    maxDrift: maxDrift === undefined ? undefined : maxDrift / 100,
    save: f.save,
  });
  if (f.html) writeDetectReport(result.report, f.html);
  emit(f, formatDetectReport(result.report), result.report);
  if (result.saved) process.stderr.write(`saved the report to ${result.saved}\n`);
  if (f.html) process.stderr.write(`wrote the HTML report to ${f.html}\n`);
  if (result.report.exceeded) {
    const failed = result.report.rows.filter((r) => r.error).map((r) => r.device);
    const limit = maxDrift !== undefined ? ` or lost more than ${maxDrift} pt mAP50-95 (--max-drift)` : "";
    throw new ValidationFailed(
      `some boards failed${limit}${failed.length ? `: failed ${failed.join(", ")}` : ""}`,
    );
  }
}
