/**
 * What `qat validate` does, as one library function: pick the boards (named, every registered one, or the default),
 * read the model, find its fake-quant simulation, load the evaluation set, validate on the fleet against the host,
 * and save the JSON report when asked. The caller prints `formatDriftReport(result.report)`.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { decodeModel } from "../../src/onnx/codec.js";
import { writeFileAtomic } from "../../src/util/atomic.js";
import { DeviceError } from "../errors.js";
import { type DeviceEntry, listDevices, openDevice, resolveDevice } from "../registry.js";
import { resolveSimulation, type SimulationRequest } from "../simulation.js";
import { loadEvalSet } from "./eval-set.js";
import { validateFleet } from "./fleet.js";
import type { ValidateOptions } from "./options.js";
import type { FleetReport } from "./report.js";
import { reportHint } from "./report-hint.js";

export interface ValidateOnDevicesOptions extends Omit<ValidateOptions, "simulation"> {
  /** The .onnx file to validate. */
  model: string;
  /** A named dataset (mnist, fashion-mnist, cifar10) or a path. */
  data: string;
  /** Folder searched first for a named dataset. */
  dataDir?: string;
  /** Split of the data (default test). */
  split?: "train" | "test";
  /** Evaluate on the first `limit` samples (0 or absent: all). */
  limit?: number;
  /** Device names or URIs; "all": every registered device; absent: the default device. */
  devices?: string[] | "all";
  /** The device registry file (default $QAT_DEVICES, else ~/.config/qat/devices.json). */
  registry?: string;
  /** Boards validated at once (default 4). */
  concurrency?: number;
  /**
   * The fake-quant simulation to run on the host: a QAT run folder or checkpoint.onnx; false for none; absent: the
   * checkpoint the model's export metadata records (the report says why when it cannot run).
   */
  simulation?: string | false;
  /** Also write the JSON report to this file, atomically (for `qat report --device-report`). */
  save?: string;
}

/** The fleet report with what was validated on what: the JSON `qat validate --json` prints and `--save` writes. */
export type ValidationReport = { model: string; dataset: string } & FleetReport;

export interface ValidationResult {
  report: ValidationReport;
  /** Where the JSON report was written (the `save` option). */
  saved?: string;
  /** What to do next with the report: the `qat report` command that renders it (to print after the report). */
  next: string;
}

export function badInput(message: string): DeviceError {
  return new DeviceError("bad-option", message, { exitCode: 2 });
}

/** The boards to validate on, resolved before anything connects (a bad name is an error, exit 2). */
export function boards(opts: Pick<ValidateOnDevicesOptions, "devices" | "registry">): DeviceEntry[] {
  const registry = { path: opts.registry };
  if (opts.devices === "all") {
    const all = listDevices(registry);
    if (!all.length) throw badInput("--all: no devices are registered (see `qat device add`)");
    return all;
  }
  const names: (string | undefined)[] = opts.devices?.length ? opts.devices : [undefined];
  return names.map((n) => resolveDevice(n, registry));
}

export function readModel(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw badInput(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Validate a model file on boards against the host and its fake-quant simulation; save the report if asked. */
export async function validateOnDevices(opts: ValidateOnDevicesOptions): Promise<ValidationResult> {
  const { model, data, dataDir, split, limit, devices, registry, simulation, save, ...run } = opts;
  const entries = boards(opts);
  if (save) {
    const folder = dirname(save);
    if (!existsSync(folder) || !statSync(folder).isDirectory())
      throw badInput(`--save ${save}: the folder ${folder} does not exist`);
  }
  const bytes = readModel(model);
  let sim: SimulationRequest | undefined;
  if (simulation !== false) {
    sim = resolveSimulation(decodeModel(bytes, { path: model }), {
      modelPath: model,
      explicit: typeof simulation === "string" ? simulation : undefined,
    });
  }
  const set = await loadEvalSet(data, { dataDir, split, limit });
  const fleet = await validateFleet(
    bytes,
    set,
    entries.map((e) => ({ name: e.name, open: () => openDevice(e) })),
    { ...run, simulation: sim },
  );
  const report: ValidationReport = { model, dataset: data, ...fleet };
  if (!save) {
    return {
      report,
      next: `for the HTML report (charts of drift, per class and latency): add --save <file>, then ${reportHint(fleet, model, bytes, "<file>")}`,
    };
  }
  writeFileAtomic(save, `${JSON.stringify(report, null, 2)}\n`);
  return {
    report,
    saved: save,
    next: `saved the report to ${save}; render it with: ${reportHint(fleet, model, bytes, save)}`,
  };
}
