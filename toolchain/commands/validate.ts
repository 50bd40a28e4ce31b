import { readFileSync } from "node:fs";
import { Command } from "commander";
import { listDevices, openDevice, resolveDevice } from "../../devices/registry.js";
import { type EvalSet, type FleetReport, formatFleet, validateFleet } from "../../devices/validate.js";
import { sampleSize } from "../../src/train/data/dataset.js";
import { openDataset } from "../../src/train/data/open.js";
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
  layers?: string;
  maxDrift?: string;
  threads?: string;
  json?: boolean;
}

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

/** The drift table and, per board, the per-class deltas, output differences and latency. */
export function formatReport(f: FleetReport): string {
  const out = [formatFleet(f)];
  for (const r of f.rows) {
    const x = r.report;
    if (!x) continue;
    out.push(
      "",
      `${r.device} (${x.board ?? "?"}, ${x.arch ?? "?"}): ${x.samples} samples, batch ${x.batchSize}`,
    );
    out.push(
      `  accuracy   host ${pct(x.hostAccuracy)}  board ${pct(x.boardAccuracy)}  drift ${(100 * x.drift).toFixed(2)} pt` +
        `${x.maxDrift !== undefined ? ` (max ${(100 * x.maxDrift).toFixed(2)} pt${x.exceeded ? ", EXCEEDED" : ""})` : ""}`,
    );
    out.push(`  agreement  ${pct(x.agreement)} of samples have the same top-1 class`);
    out.push(
      `  per class  ${x.perClass.map((c) => `${c.label}:${c.delta >= 0 ? "+" : ""}${(100 * c.delta).toFixed(1)}`).join(" ")} (board − host, pt)`,
    );
    for (const d of [x.output, ...x.layers]) {
      out.push(
        `  ${d.name}: max |Δ| ${d.maxAbs.toExponential(2)} (${d.refMaxAbs ? ((100 * d.maxAbs) / d.refMaxAbs).toFixed(4) : "0"}% of max |host|), mean ${d.meanAbs.toExponential(2)}` +
          (d.maxSteps !== undefined
            ? `, ${d.maxSteps.toFixed(2)} quantization steps`
            : ", no quantization scale"),
      );
    }
    out.push(
      `  latency    p50 ${x.latencyMs.p50.toFixed(2)} ms  p90 ${x.latencyMs.p90.toFixed(2)} ms  p99 ${x.latencyMs.p99.toFixed(2)} ms per sample`,
    );
    out.push(`  memory     peak ${(x.peakRssBytes / 2 ** 20).toFixed(1)} MiB (agent RSS)`);
  }
  return out.join("\n");
}

/** `qat validate MODEL --data D`: run on boards and on the host, report the drift; exit 1 above --max-drift. */
export function validateCommand(): Command {
  return new Command("validate")
    .description(
      "validate a model on boards against the host: accuracy drift, agreement, output differences, latency, memory",
    )
    .argument("<model>", "the .onnx file")
    .requiredOption("--data <dataset>", "a named dataset (mnist, fashion-mnist, cifar10) or a path")
    .option("--data-dir <dir>", "folder searched first for a named dataset")
    .option("--split <split>", "train or test", "test")
    .option("--device <names>", "device names or URIs, comma-separated (default: the default device)")
    .option("--all", "every registered device", false)
    .option("--concurrency <n>", "boards validated at once", "4")
    .option("--limit <n>", "evaluate on the first n samples (0: all)", "0")
    .option("--layers <names>", "intermediate values to compare as well, comma-separated")
    .option(
      "--max-drift <points>",
      "fail (exit 1) when host − board accuracy exceeds this many percentage points",
    )
    .option("--threads <n>", "ONNX Runtime threads on the board")
    .option("--json", "print one JSON object as the last line of stdout", false)
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
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(model);
      } catch (e) {
        throw new UsageError(`cannot read ${model}: ${(e as Error).message}`);
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
          layers: f.layers
            ?.split(",")
            .map((s) => s.trim())
            .filter(Boolean),
          maxDrift: maxDrift === undefined ? undefined : maxDrift / 100,
          threads: f.threads === undefined ? undefined : int(f.threads, "--threads", 1),
        },
      );
      emit(f, formatReport(report), { model, dataset: f.data, ...report });
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
