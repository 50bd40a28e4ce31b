import * as ort from "onnxruntime-node";
import { encodeModel } from "../onnx/codec.js";
import type { Model } from "../onnx/ir.js";
import type { Tensor } from "../onnx/tensor.js";

export interface SessionOptions {
  /** Intra-op threads (default: all cores ORT sees). */
  threads?: number;
  /** ORT graph optimisation level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Extra ORT session config entries, e.g. { "session.x64quantprecision": "1" }. */
  config?: Record<string, string>;
}

/** Open an ORT session on a model in memory, a file path or encoded bytes. */
export async function openSession(
  model: Model | Uint8Array | string,
  opts: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const options = ortSessionOptions(opts);
  const src = typeof model === "string" || model instanceof Uint8Array ? model : encodeModel(model);
  return typeof src === "string"
    ? ort.InferenceSession.create(src, options)
    : ort.InferenceSession.create(src, options);
}

/** The onnxruntime-node options openSession uses (for callers adding their own, e.g. profiling). */
export function ortSessionOptions(opts: SessionOptions = {}): ort.InferenceSession.SessionOptions {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: opts.optimization ?? "all",
    executionMode: "sequential",
    // errors only: ORT's warnings (unused initializers, old opsets) are not for our users
    logSeverityLevel: 3,
  };
  if (opts.threads) {
    options.intraOpNumThreads = opts.threads;
    options.interOpNumThreads = 1;
  }
  if (opts.config) options.extra = { session: {}, ...nest(opts.config) };
  return options;
}

function nest(flat: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flat)) {
    const parts = k.split(".");
    let o = out;
    for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[parts.at(-1)!] = v;
  }
  return out;
}

/** Our tensor as an ORT tensor, sharing its memory. */
export function toOrt(t: Tensor): ort.Tensor {
  const dtype = t.dtype === "bool" ? "bool" : t.dtype;
  return new ort.Tensor(dtype as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims);
}

/** An ORT tensor as ours, sharing its memory. */
export function fromOrt(t: ort.Tensor): Tensor {
  return { dtype: t.type as Tensor["dtype"], dims: [...t.dims], data: t.data as Tensor["data"] };
}

/** Run a session on named tensors and return every output as our tensors. */
export async function run(
  session: ort.InferenceSession,
  feeds: Record<string, Tensor>,
  outputs?: string[],
): Promise<Record<string, Tensor>> {
  const f: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = toOrt(v);
  const res = outputs ? await session.run(f, outputs) : await session.run(f);
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(res)) out[k] = fromOrt(v);
  return out;
}
