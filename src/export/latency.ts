import type * as ort from "onnxruntime-node";
import type { Model } from "../onnx/ir.js";
import { openSession, toOrt } from "../runtime/session.js";

export interface LatencyOptions {
  threads?: number;
  /** ORT session config entries. */
  config?: Record<string, string>;
  /** Time spent measuring each batch size, seconds (default 0.5; at least 5 runs). */
  seconds?: number;
}

/**
 * Median wall time of one session run per batch size, ms, after warm-up runs. Inputs are random values in 0…255
 * (as images are stored); the model's first input that is not an initializer is fed.
 */
export async function measureLatency(
  model: Model | Uint8Array | string,
  sampleShape: number[],
  batches: number[],
  opts: LatencyOptions = {},
): Promise<Record<string, number>> {
  const session = await openSession(model, { threads: opts.threads, config: opts.config });
  const out: Record<string, number> = {};
  try {
    const input = session.inputNames[0]!;
    const size = sampleShape.reduce((a, b) => a * b, 1);
    let seed = 12345;
    for (const b of batches) {
      const x = new Float32Array(b * size);
      for (let i = 0; i < x.length; i++) {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        x[i] = seed % 256;
      }
      const feeds: Record<string, ort.Tensor> = {
        [input]: toOrt({ dtype: "float32", dims: [b, ...sampleShape], data: x }),
      };
      for (let i = 0; i < 3; i++) await session.run(feeds);
      const times: number[] = [];
      const until = performance.now() + 1000 * (opts.seconds ?? 0.5);
      while (times.length < 5 || performance.now() < until) {
        const t = performance.now();
        await session.run(feeds);
        times.push(performance.now() - t);
      }
      times.sort((a, c) => a - c);
      out[`batch${b}`] = times[Math.floor(times.length / 2)]!;
    }
  } finally {
    await session.release();
  }
  return out;
}
