import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { Command, Option } from "commander";
import { listDevices, openDevice, resolveDevice } from "../../devices/registry.js";
import { exportMetadata, resolveSimulation, type SimulationRequest } from "../../devices/simulation.js";
import {
  DEFAULT_LAYER_THRESHOLD,
  type DeviceReport,
  type EvalSet,
  type FleetReport,
  formatFleet,
  type Runtime,
  validateFleet,
} from "../../devices/validate.js";
import { sampleSize } from "../../src/data/dataset.js";
import { openDataset } from "../../src/data/open.js";
import { decodeModel } from "../../src/onnx/codec.js";
import { writeFileAtomic } from "../../src/util/atomic.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";
import { registryOpts } from "./device.js";

interface ValidateFlags {
  data: string;
  dataDir?: string;
  split: "train" | "test";
  device?: string;
  all?: boolean;
  concurrency: string;
  limit: string;
  layers?: string | boolean;
  layerThreshold: string;
  simulation?: string | boolean;
  runtime: Runtime;
  trtexec?: string;
  trtIterations?: string;
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

function int(v: string, flag: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${flag} must be a whole number ≥ ${min}, got '${v}'`);
  return n;
}

/** The evaluation set: the dataset's stored values (e.g. raw 0–255 MNIST pixels), the first `limit` samples. */
export async function loadEvalSet(
  spec: string,
  opts: { dataDir?: string; split: "train" | "test"; limit: number },
): Promise<EvalSet> {
  const ds = await openDataset(spec, { dataDir: opts.dataDir, split: opts.split });
  const n = opts.limit > 0 ? Math.min(opts.limit, ds.length) : ds.length;
  const size = sampleSize(ds.inputShape);
  const inputs = new Float32Array(n * size);
  const y = new BigInt64Array(n);
  ds.fill(
    Array.from({ length: n }, (_, i) => i),
    inputs,
    y,
  );
  return { inputs, sampleShape: [...ds.inputShape], labels: Array.from(y, Number) };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

function stepsOf(d: { maxSteps?: number; stepKind?: string }): string {
  if (d.maxSteps === undefined) return "no quantization scale";
  const unit =
    d.stepKind === "integer"
      ? "integer steps"
      : d.stepKind === "range"
        ? "steps of its range/255"
        : `${d.stepKind} steps`;
  return `${d.maxSteps.toFixed(2)} ${unit}`;
}

/** The per-layer table of one board: tensor, layer, ops, max steps, share changed; the first divergence. */
export function formatLayers(x: DeviceReport): string[] {
  if (x.firstDivergence === undefined) return [];
  const out = [
    `  layers     host vs board per quantized tensor, in quantization steps (diverged: more than ${x.layerThreshold ?? DEFAULT_LAYER_THRESHOLD} step)`,
  ];
  const head = ["#", "tensor", "layer", "ops", "max steps", "changed", ""];
  const rows = x.layers.map((l, i) => [
    String(i + 1),
    l.name,
    l.node,
    l.ops.join("+") || l.op,
    l.maxSteps === undefined ? "-" : l.maxSteps.toFixed(2),
    `${(100 * (l.changed ?? 0)).toFixed(1)}%`,
    l.diverged ? (x.firstDivergence?.tensor === l.name ? "<- first divergence" : "diverged") : "",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows])
    out.push(
      `    ${r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd()}`,
    );
  const f = x.firstDivergence;
  if (f) {
    out.push(
      `  first divergence: layer '${f.node}' (${f.ops.join("+") || f.op}) → '${f.tensor}': ${f.maxSteps.toFixed(2)} ${f.stepKind === "integer" ? "" : `${f.stepKind} `}steps, ${(100 * f.changed).toFixed(1)}% of values differ`,
    );
  } else {
    out.push(
      `  first divergence: none — every compared tensor and the output are within ${x.layerThreshold ?? DEFAULT_LAYER_THRESHOLD} step of the host`,
    );
  }
  if (x.probe) {
    out.push(
      x.probe.host === 0 && x.probe.board === 0
        ? "  probes     exposing the tensors left the final output unchanged on host and board"
        : `  probes     WARNING: exposing the tensors changed the final output (max |Δ| host ${x.probe.host.toExponential(2)}, board ${x.probe.board.toExponential(2)}): ORT fused the probed model differently, so these layer values may not be the deployed model's`,
    );
  }
  return out;
}

/** The drift table and, per board, the per-class deltas, output differences and latency. */
export function formatReport(f: FleetReport): string {
  const out = [formatFleet(f)];
  if (f.simulation) {
    out.push(
      f.simulation.available
        ? `simulation (fake-quant, on the host): ${pct(f.simulation.accuracy)}, top-1 agreement with the host ${pct(f.simulation.agreementWithHost)} — ${f.simulation.source}${f.simulation.note ? ` (${f.simulation.note})` : ""}`
        : `simulation: not run — ${f.simulation.reason}`,
    );
  }
  if (f.runtime === "tensorrt")
    out.push("runtime: TensorRT through trtexec on the board (unverified on real Jetson hardware)");
  for (const r of f.rows) {
    const x = r.report;
    if (!x) continue;
    out.push(
      "",
      `${r.device} (${x.board ?? "?"}, ${x.arch ?? "?"}): ${x.samples} samples, batch ${x.batchSize}${x.runtime === "tensorrt" ? ", TensorRT" : ""}`,
    );
    out.push(
      `  accuracy   host ${pct(x.hostAccuracy)}  board ${pct(x.boardAccuracy)}  drift ${(100 * x.drift).toFixed(2)} pt` +
        `${x.maxDrift !== undefined ? ` (max ${(100 * x.maxDrift).toFixed(2)} pt${x.exceeded ? ", EXCEEDED" : ""})` : ""}`,
    );
    out.push(`  agreement  ${pct(x.agreement)} of samples have the same top-1 class`);
    if (x.simulation?.available) {
      out.push(
        `  simulation ${pct(x.simulation.accuracy)}; the board agrees with it on ${pct(x.simulation.agreementWithBoard)} of samples (simulation − board ${(100 * x.simulation.drift).toFixed(2)} pt)`,
      );
    }
    out.push(
      `  per class  ${x.perClass.map((c) => `${c.label}:${c.delta >= 0 ? "+" : ""}${(100 * c.delta).toFixed(1)}`).join(" ")} (board − host, pt)`,
    );
    const d = x.output;
    out.push(
      `  ${d.name}: max |Δ| ${d.maxAbs.toExponential(2)} (${d.refMaxAbs ? ((100 * d.maxAbs) / d.refMaxAbs).toFixed(4) : "0"}% of max |host|), mean ${d.meanAbs.toExponential(2)}, ${stepsOf(d)}`,
    );
    out.push(...formatLayers(x));
    out.push(
      `  latency    p50 ${x.latencyMs.p50.toFixed(2)} ms  p90 ${x.latencyMs.p90.toFixed(2)} ms  p99 ${x.latencyMs.p99.toFixed(2)} ms per sample` +
        (x.runtime === "tensorrt" ? " (trtexec's median Latency per batch)" : ""),
    );
    if (x.tensorrt) {
      out.push(
        `  tensorrt   ${x.tensorrt.version ? `TensorRT ${x.tensorrt.version}` : "TensorRT (version not printed)"}, engine ${x.tensorrt.engine} (${x.tensorrt.cached ? "cached" : `built in ${(x.tensorrt.buildMs / 1000).toFixed(1)} s`})` +
          (x.tensorrt.gpuComputeMs
            ? `, GPU compute p50 ${x.tensorrt.gpuComputeMs.p50.toFixed(3)} ms per batch`
            : ""),
      );
    }
    out.push(
      x.peakRssBytes
        ? `  memory     peak ${(x.peakRssBytes / 2 ** 20).toFixed(1)} MiB (${x.runtime === "tensorrt" ? "trtexec RSS, sampled" : "agent RSS"})`
        : "  memory     not measured",
    );
  }
  return out.join("\n");
}

/**
 * The `qat report` command that renders a saved report: the run is the folder `npm run main` writes (the model beside
 * its qat/ run), else the simulation's run folder, else the run the export metadata records; `--int8` names the
 * model when the report would not find it in the run.
 */
export function reportHint(
  report: FleetReport,
  modelPath: string,
  modelBytes: Uint8Array,
  saved: string,
): string {
  let run: string | undefined;
  if (report.simulation?.available) run = dirname(report.simulation.source);
  else {
    try {
      const r = exportMetadata(decodeModel(modelBytes))?.source?.run;
      if (typeof r === "string") run = r;
    } catch {
      run = undefined;
    }
  }
  const modelDir = resolve(dirname(modelPath));
  if (run) {
    const inside = relative(modelDir, resolve(run));
    if (inside && !inside.startsWith("..") && !isAbsolute(inside)) run = dirname(modelPath);
  }
  const found = run && resolve(run, "model.int8.onnx") === resolve(modelPath);
  return `qat report ${run ?? "<run>"} --device-report ${saved}${found ? "" : ` --int8 ${modelPath}`}`;
}

/** `qat validate MODEL --data D`: run on boards and on the host, report the drift; exit 1 above --max-drift. */
export function validateCommand(): Command {
  return new Command("validate")
    .description(
      "validate a model on boards against the host and the fake-quant simulation: accuracy of each, drift, agreement, output and per-layer differences, latency, memory",
    )
    .argument("<model>", "the .onnx file")
    .requiredOption("--data <dataset>", "a named dataset (mnist, fashion-mnist, cifar10) or a path")
    .option("--data-dir <dir>", "folder searched first for a named dataset")
    .addOption(new Option("--split <split>", "split of the data").choices(["train", "test"]).default("test"))
    .option("--device <names>", "device names or URIs, comma-separated (default: the default device)")
    .option("--all", "every registered device", false)
    .option("--concurrency <n>", "boards validated at once", "4")
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
        .choices(["onnxruntime", "tensorrt"])
        .default("onnxruntime"),
    )
    .option(
      "--trtexec <path>",
      "tensorrt: trtexec on the board (default /usr/src/tensorrt/bin/trtexec, else PATH)",
    )
    .option("--trt-iterations <n>", "tensorrt: inference iterations per batch (latency = their median)", "10")
    .option(
      "--max-drift <points>",
      "fail (exit 1) when host − board accuracy exceeds this many percentage points",
    )
    .option("--threads <n>", "ONNX Runtime threads on the board")
    .option("--save <file>", "also write the JSON report to this file (for `qat report --device-report`)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .addHelpText("after", `\n${TENSORRT_NOTE}`)
    .action(async (model: string, f: ValidateFlags, cmd: Command) => {
      const opts = registryOpts(cmd);
      if (f.all && f.device) throw new UsageError("give --device or --all, not both");
      const entries = f.all
        ? listDevices(opts)
        : (
            f.device
              ?.split(",")
              .map((s) => s.trim())
              .filter(Boolean) ?? [undefined]
          ).map((n) => resolveDevice(n, opts));
      if (!entries.length) throw new UsageError("--all: no devices are registered (see `qat device add`)");
      const maxDrift = f.maxDrift === undefined ? undefined : Number(f.maxDrift);
      if (maxDrift !== undefined && !(maxDrift >= 0))
        throw new UsageError(`--max-drift must be ≥ 0 points, got '${f.maxDrift}'`);
      const layerThreshold = Number(f.layerThreshold);
      if (!(layerThreshold >= 0) || f.layerThreshold.trim() === "")
        throw new UsageError(`--layer-threshold must be ≥ 0 quantization steps, got '${f.layerThreshold}'`);
      if (
        f.runtime !== "tensorrt" &&
        (f.trtexec !== undefined || cmd.getOptionValueSource("trtIterations") === "cli")
      )
        throw new UsageError("--trtexec and --trt-iterations apply to --runtime tensorrt");
      const layers =
        f.layers === undefined
          ? undefined
          : f.layers === true
            ? ("all" as const)
            : String(f.layers)
                .split(",")
                .map((s) => s.trim())
                .filter(Boolean);
      if (Array.isArray(layers) && !layers.length)
        throw new UsageError("--layers: give tensor names, or no list for all");
      if (f.save) {
        const folder = dirname(f.save);
        if (!existsSync(folder) || !statSync(folder).isDirectory())
          throw new UsageError(`--save ${f.save}: the folder ${folder} does not exist`);
      }
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(model);
      } catch (e) {
        throw new UsageError(`cannot read ${model}: ${(e as Error).message}`);
      }
      let simulation: SimulationRequest | undefined;
      if (f.simulation !== false) {
        simulation = resolveSimulation(decodeModel(bytes, { path: model }), {
          modelPath: model,
          explicit: typeof f.simulation === "string" ? f.simulation : undefined,
        });
      }
      const set = await loadEvalSet(f.data, {
        dataDir: f.dataDir,
        split: f.split,
        limit: int(f.limit, "--limit", 0),
      });
      const report = await validateFleet(
        bytes,
        set,
        entries.map((e) => ({ name: e.name, open: () => openDevice(e) })),
        {
          concurrency: int(f.concurrency, "--concurrency", 1),
          layers,
          layerThreshold,
          simulation,
          runtime: f.runtime,
          trtexec: f.trtexec,
          trtIterations:
            f.runtime === "tensorrt" ? int(f.trtIterations ?? "10", "--trt-iterations", 1) : undefined,
          maxDrift: maxDrift === undefined ? undefined : maxDrift / 100,
          threads: f.threads === undefined ? undefined : int(f.threads, "--threads", 1),
        },
      );
      const json = { model, dataset: f.data, ...report };
      emit(f, formatReport(report), json);
      if (f.save) {
        writeFileAtomic(f.save, `${JSON.stringify(json, null, 2)}\n`);
        process.stderr.write(
          `saved the report to ${f.save}; render it with: ${reportHint(report, model, bytes, f.save)}\n`,
        );
      } else if (!f.json) {
        process.stderr.write(
          `for the HTML report (charts of drift, per class and latency): add --save <file>, then ${reportHint(report, model, bytes, "<file>")}\n`,
        );
      }
      if (report.exceeded) {
        const bad = report.rows
          .filter((r) => r.error || r.report?.exceeded)
          .map((r) =>
            r.error
              ? `${r.device} failed (${r.error.code})`
              : `${r.device} drifted ${(100 * r.report!.drift).toFixed(2)} pt`,
          );
        throw new ValidationFailed(
          `${bad.join(", ")}${maxDrift !== undefined ? ` (--max-drift ${maxDrift} pt)` : ""}`,
        );
      }
    });
}
