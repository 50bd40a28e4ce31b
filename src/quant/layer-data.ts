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
  const g = cloneGraph(net.eval);
  const have = new Set(g.outputs.map((o) => o.name));
  for (const v of values) if (!have.has(v)) g.outputs.push({ name: v, dtype: "float32" });
  const session = await openSession(modelOf(g), { threads: opts.threads });
  const out = new Map<string, Captured>();
  const loader = new DataLoader(data, {
    batchSize: opts.batchSize ?? 64,
    seed: opts.seed ?? 0,
    shuffle: true,
  });
  let seen = 0;
  try {
    for await (const b of loader.epoch(0)) {
      const n = Math.min(b.size, want - seen);
      const x: Tensor = { dtype: "float32", dims: [b.size, ...net.inputShape], data: b.x };
      const res = await run(session, { [net.input]: x }, values);
      for (const v of values) {
        const t = res[v]!;
        const per = t.dims.slice(1).reduce((a, c) => a * c, 1);
        let c = out.get(v);
        if (!c) {
          c = { shape: t.dims.slice(1), samples: want, data: new Float32Array(want * per) };
          out.set(v, c);
        }
        c.data.set(toFloat32(t).subarray(0, n * per), seen * per);
      }
      seen += n;
      if (seen >= want) break;
    }
  } finally {
    await session.release();
  }
  return out;
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
