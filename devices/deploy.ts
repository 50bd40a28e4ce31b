/**
 * Deploying a model: upload it into the board's content-addressed store (sha256 checked there), move `current`
 * to it, keep the last N versions. An upload cut mid-way leaves `current` where it was and no partial file among
 * the models (the bytes sit in the agent's tmp/ until verified, and are removed when the link drops).
 */
import { decodeModel } from "../src/onnx/codec.js";
import { OnnxError } from "../src/onnx/errors.js";
import type { ModelList } from "./client.js";
import { connectAgent } from "./setup.js";
import type { Transport } from "./transport/channel.js";

export interface DeployOptions {
  /** How many versions to keep on the board, `current` included (default 3). */
  keep?: number;
  /** A name stored beside the model (e.g. the file name). */
  name?: string;
  onProgress?: (sent: number, total: number) => void;
}

export interface DeployResult {
  device: string;
  sha256: string;
  bytes: number;
  /** False when the board already had these bytes. */
  uploaded: boolean;
  previous: string | null;
  history: string[];
  /** Versions deleted to keep only `keep`. */
  removed: string[];
}

export async function deployModel(
  model: Uint8Array,
  t: Transport,
  opts: DeployOptions = {},
): Promise<DeployResult> {
  const keep = opts.keep ?? 3;
  if (!Number.isInteger(keep) || keep < 1)
    throw new OnnxError(`keep must be a whole number ≥ 1, got ${keep}`);
  decodeModel(model, { path: opts.name }); // refuse what is not an ONNX model before sending it anywhere
  const { client } = await connectAgent(t);
  try {
    const put = await client.put(model, { kind: "model", name: opts.name }, { onProgress: opts.onProgress });
    const cur = await client.setCurrent(put.sha256, keep);
    return {
      device: t.label,
      sha256: put.sha256,
      bytes: model.length,
      uploaded: !put.existed,
      previous: cur.previous,
      history: cur.history,
      removed: cur.removed,
    };
  } finally {
    await client.close();
  }
}

/** Point `current` back to the version deployed before it. */
export async function rollback(
  t: Transport,
): Promise<{ device: string; from: string | null; to: string; history: string[] }> {
  const { client } = await connectAgent(t);
  try {
    return { device: t.label, ...(await client.rollback()) };
  } finally {
    await client.close();
  }
}

/** The models on the board, `current` and the deploy history. */
export async function listModels(t: Transport): Promise<ModelList & { device: string }> {
  const { client } = await connectAgent(t);
  try {
    return { device: t.label, ...(await client.list()) };
  } finally {
    await client.close();
  }
}
