import type { Dataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import type { NetModel } from "../nn/model.js";
import { modelOf } from "../onnx/codec.js";
import { cloneGraph } from "../onnx/ir.js";
import { type Tensor, toFloat32 } from "../onnx/tensor.js";
import { openSession, run } from "../runtime/session.js";

/** Values of a model captured on calibration samples: `data` holds `samples` rows of `shape` (per sample). */
export interface Captured {
  shape: number[];
  samples: number;
  data: Float32Array;
}

export interface CaptureOptions {
  /** Samples to capture (default 512; fewer when the dataset is smaller). */
  samples?: number;
  batchSize?: number;
  seed?: number;
  threads?: number;
}

/**
 * Run the float model's eval graph on calibration samples (shuffled with `seed`) with the given values as extra
 * outputs and keep them: the inputs and float outputs of layers, for AdaRound and bias correction. Memory is
 * samples × the values' sizes, so callers capture a few layers at a time on large models.
 */
export async function captureValues(
  net: NetModel,
  values: string[],
  data: Dataset,
  opts: CaptureOptions = {},
): Promise<Map<string, Captured>> {
  const want = Math.min(opts.samples ?? 512, data.length);
  if (want < 1) throw new Error("the calibration dataset is empty: give it at least one sample");
  const batchSize = opts.batchSize ?? 64;
  const out = new Map<string, Captured>();
  const seen = new Map<string, number>();
  const batches = Math.ceil(want / batchSize);
  await observeValues(net, values, data, { ...opts, batchSize, batches }, (v, d, dims) => {
    const per = dims.slice(1).reduce((a, c) => a * c, 1);
    const at = seen.get(v) ?? 0;
    const n = Math.min(dims[0]!, want - at);
    let c = out.get(v);
    if (!c) {
      c = { shape: dims.slice(1), samples: want, data: new Float32Array(want * per) };
      out.set(v, c);
    }
    c.data.set(d.subarray(0, n * per), at * per);
    seen.set(v, at + n);
  });
  return out;
}

/**
 * Run the float eval graph on shuffled calibration batches (`seed`) with `taps` as extra outputs and hand each tap's
 * values of each batch to `each`, for `batches` batches (default 32) or until the data ends.
 */
export async function observeValues(
  net: NetModel,
  taps: string[],
  data: Dataset,
  opts: { batches?: number; batchSize?: number; seed?: number; threads?: number },
  each: (tap: string, values: Float32Array, dims: readonly number[]) => void,
): Promise<void> {
  const g = cloneGraph(net.eval);
  const have = new Set(g.outputs.map((o) => o.name));
  for (const t of taps) if (!have.has(t)) g.outputs.push({ name: t, dtype: "float32" });
  const session = await openSession(modelOf(g), { threads: opts.threads });
  const loader = new DataLoader(data, {
    batchSize: opts.batchSize ?? 64,
    seed: opts.seed ?? 0,
    shuffle: true,
  });
  const limit = opts.batches ?? 32;
  let seen = 0;
  try {
    for await (const b of loader.epoch(0)) {
      const x: Tensor = { dtype: "float32", dims: [b.size, ...net.inputShape], data: b.x };
      const res = await run(session, { [net.input]: x }, taps);
      for (const t of taps) each(t, toFloat32(res[t]!), res[t]!.dims);
      if (++seen >= limit) break;
    }
  } finally {
    await session.release();
  }
}

/** Rows [from, to) of a capture as a batch tensor. */
export function rows(c: Captured, from: number, to: number): Tensor {
  const per = c.shape.reduce((a, b) => a * b, 1);
  return { dtype: "float32", dims: [to - from, ...c.shape], data: c.data.slice(from * per, to * per) };
}

/** The rows listed in `idx` as a batch tensor. */
export function gather(c: Captured, idx: ArrayLike<number>): Tensor {
  const per = c.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(idx.length * per);
  for (let i = 0; i < idx.length; i++) data.set(c.data.subarray(idx[i]! * per, (idx[i]! + 1) * per), i * per);
  return { dtype: "float32", dims: [idx.length, ...c.shape], data };
}
