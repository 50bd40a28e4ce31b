/**
 * Fleets: one model on several boards at once, under a concurrency limit, against one host reference. A board that
 * cannot be reached or fails gets a row with its error instead of a report; the others still run.
 */
import { argmaxRows } from "../../src/train/evaluate.js";
import type { Transport } from "../transport/channel.js";
import { validateModel } from "./board.js";
import { hostSimulation } from "./compare.js";
import { hostReference } from "./host-run.js";
import { DEFAULT_CONCURRENCY, type EvalSet, type ValidateOptions } from "./options.js";
import type { FleetReport, FleetRow } from "./report.js";

export interface FleetTarget {
  name: string;
  /** Connect (called when the target's turn comes, within the concurrency limit). */
  open: () => Promise<Transport>;
}

/** Run `job` over `items` with at most `concurrency` at a time; results in the items' order. */
async function pool<T, R>(items: T[], concurrency: number, job: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await job(items[i]!);
    }
  };
  const n = Math.max(1, Math.min(concurrency, items.length));
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/** Validate on several boards at once (at most `concurrency` at a time), one row per board. */
export async function validateFleet(
  modelBytes: Uint8Array,
  set: EvalSet,
  targets: FleetTarget[],
  opts: ValidateOptions & { concurrency?: number } = {},
): Promise<FleetReport> {
  const ref = await hostReference(modelBytes, set, opts);
  const rows = await pool(
    targets,
    opts.concurrency ?? DEFAULT_CONCURRENCY,
    async (target): Promise<FleetRow> => {
      let t: Transport | undefined;
      try {
        t = await target.open();
        const report = await validateModel(modelBytes, set, t, opts, ref);
        return { device: target.name, report: { ...report, device: target.name } };
      } catch (e) {
        const err = e as Error & { code?: string };
        return {
          device: target.name,
          error: { code: typeof err.code === "string" ? err.code : "error", message: err.message },
        };
      } finally {
        await t?.close().catch(() => {});
      }
    },
  );
  const samples = ref.prepared.samples;
  const labels = Array.from({ length: samples }, (_, i) => Number(set.labels[i]));
  const hp = argmaxRows(ref.result.output, samples);
  const failed = rows.filter((r) => r.error).length;
  const report: FleetReport = {
    rows,
    hostAccuracy: labels.filter((y, i) => hp[i] === y).length / samples,
    samples,
    runtime: opts.runtime ?? "onnxruntime",
    exceeded: failed > 0 || rows.some((r) => r.report?.exceeded),
    failed,
  };
  const sp = ref.result.simulation ? argmaxRows(ref.result.simulation, samples) : undefined;
  const simulation = opts.simulation && hostSimulation(opts.simulation, sp, labels, hp);
  if (simulation) report.simulation = simulation;
  return report;
}
