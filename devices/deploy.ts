/**
 * Deploying a model: upload it into the board's content-addressed store (sha256 checked there), have the board's
 * runtime load it and run one inference on zeros, then move `current` to it, keeping the last N versions. A model
 * the runtime cannot load or run is refused (RemoteError `model-load`, naming the model and onnxruntime's message)
 * and `current` stays where it was. An upload cut mid-way leaves `current` where it was and no partial file among
 * the models (the bytes sit in the agent's tmp/ until verified, and are removed when the link drops). The board
 * keeps current and history in one file replaced whole, under a lock on its home, so an agent killed at any step,
 * or two hosts deploying at once, leave a complete current model and a history rollback can trust.
 */
import { createHash } from "node:crypto";
import { decodeModel } from "../src/onnx/codec.js";
import { OnnxError } from "../src/onnx/errors.js";
import type { ModelList, TrtEngineInfo } from "./client.js";
import { connectAgent } from "./setup.js";
import type { Transport } from "./transport/channel.js";
import { assertTensorRtModel } from "./validate.js";

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

export interface EngineOptions {
  /** trtexec on the board (default /usr/src/tensorrt/bin/trtexec, else PATH). */
  trtexec?: string;
  /** The batch size the engine is built for (default: the model's fixed batch, else 1). */
  batch?: number;
}

/**
 * Build the TensorRT engine of a model already on the board (deploy it first) with trtexec there, and keep it beside
 * the model (models/<sha256>/tensorrt/<key>.plan); an engine built before with the same TensorRT and shapes is
 * reused. QDQ models are checked against TensorRT's explicit-quantization rules first and built with int8. Unverified
 * on real Jetson hardware.
 */
export async function buildTrtEngine(
  model: Uint8Array,
  t: Transport,
  opts: EngineOptions = {},
): Promise<TrtEngineInfo & { device: string; sha256: string; batch: number }> {
  const m = decodeModel(model);
  const g = m.graph;
  const input = g.inputs.find((v) => !g.initializers.has(v.name));
  if (!input?.shape) throw new OnnxError("the model's input has no shape: TensorRT needs its dims");
  const fixed = typeof input.shape[0] === "number" ? input.shape[0] : undefined;
  const batch = opts.batch ?? fixed ?? 1;
  if (!Number.isInteger(batch) || batch < 1)
    throw new OnnxError(`batch must be a whole number ≥ 1, got ${batch}`);
  if (fixed !== undefined && batch !== fixed) {
    throw new OnnxError(
      `the model's input '${input.name}' fixes the batch at ${fixed}; cannot build for ${batch}`,
    );
  }
  const rest = input.shape.slice(1);
  if (rest.some((d) => typeof d !== "number")) {
    throw new OnnxError(
      `the model's input '${input.name}' is [${input.shape}]: only the batch may be symbolic for a TensorRT engine`,
    );
  }
  const quantized = g.nodes.some((n) => n.opType === "QuantizeLinear" || n.opType === "DequantizeLinear");
  if (quantized) assertTensorRtModel(m);
  const sha256 = createHash("sha256").update(model).digest("hex");
  const { client } = await connectAgent(t);
  try {
    const r = await client.buildEngine(sha256, {
      trtexec: opts.trtexec,
      inputs: [{ name: input.name, dims: [batch, ...(rest as number[])] }],
      dynamic: fixed === undefined,
      int8: quantized,
    });
    return { ...r, device: t.label, sha256, batch };
  } finally {
    await client.close();
  }
}
