/**
 * What `qat deploy` does, as library functions: deploy a model file to a registered board (sha256-checked upload,
 * made current, the last `keep` versions kept), with TensorRT also build its engine there; or roll the board back
 * to the version deployed before. Their text is in device-text.ts.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import type { TrtEngineInfo } from "./client.js";
import { buildTrtEngine, type DeployResult, deployModel, rollback } from "./deploy.js";
import { DeviceError } from "./errors.js";
import { resolveDevice } from "./registry.js";
import type { Runtime } from "./validation/options.js";
import { withDevice } from "./with-device.js";

/** Versions a board keeps by default, current included. */
export const DEFAULT_KEEP = 3;

export interface DeployFileOptions {
  /** The .onnx file. */
  model: string;
  /** Device name or URI (absent: the default device). */
  device?: string;
  /** The device registry file. */
  registry?: string;
  /** Versions to keep on the board, current included (default 3). */
  keep?: number;
  /** tensorrt: also build the TensorRT engine on the board with trtexec. */
  runtime?: Runtime;
  /** tensorrt: trtexec on the board. */
  trtexec?: string;
  /** tensorrt: the batch size to build the engine for (default: the model's, else 1). */
  batch?: number;
}

/** A deploy (the JSON of `qat deploy`): the upload, and the TensorRT engine when one was built. */
export type DeployReport = DeployResult & {
  tensorrt?: TrtEngineInfo & { device: string; sha256: string; batch: number };
};

function readModel(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DeviceError("bad-option", `cannot read ${path}: ${(e as Error).message}`, { exitCode: 2 });
  }
}

/** Deploy a model file to a board and make it current (and with tensorrt, build its engine there). */
export async function deployFile(opts: DeployFileOptions): Promise<DeployReport> {
  const entry = resolveDevice(opts.device, { path: opts.registry });
  const bytes = readModel(opts.model);
  const { r, engine } = await withDevice(entry, async (t) => {
    const r = await deployModel(bytes, t, { keep: opts.keep ?? DEFAULT_KEEP, name: basename(opts.model) });
    const engine =
      opts.runtime === "tensorrt"
        ? await buildTrtEngine(bytes, t, { trtexec: opts.trtexec, batch: opts.batch })
        : undefined;
    return { r, engine };
  });
  return { ...r, device: entry.name, ...(engine ? { tensorrt: engine } : {}) };
}

/** Point a board's current model back to the version deployed before it. */
export async function rollbackDevice(
  opts: { device?: string; registry?: string } = {},
): Promise<{ device: string; from: string | null; to: string; history: string[] }> {
  const entry = resolveDevice(opts.device, { path: opts.registry });
  const r = await withDevice(entry, (t) => rollback(t));
  return { ...r, device: entry.name };
}
