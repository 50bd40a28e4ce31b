/**
 * Batches too big for one frame: cut along the first (batch) dimension into parts that fit the frame limit, and the
 * parts' results joined back into the result of the whole batch. Only a model whose batch dimension is free can run
 * the parts; a fixed batch (or a TensorRT engine built for one) makes the board refuse them with its own message.
 */
import type { BatchReply } from "./agent/protocol.js";
import type { TypedArray } from "./agent/tensors.js";
import { ProtocolError } from "./errors.js";

export interface HostTensor {
  name: string;
  dtype: string;
  dims: number[];
  data: TypedArray;
}

/** A batch's reply with its output tensors decoded from the payload. */
export type BatchResult = Omit<BatchReply, "outputs"> & { outputs: HostTensor[] };

/** Room kept in a frame for the 8-byte alignment padding between tensors. */
const SLACK = 64;

/**
 * The sample ranges [start, end) to send so that each part's payload (inputs and labels) stays within `limit` bytes;
 * one range when the batch fits.
 */
export function batchParts(
  inputs: HostTensor[],
  labels: BigInt64Array | undefined,
  limit: number,
  device: string,
): [number, number][] {
  const n = inputs[0]?.dims[0] ?? 0;
  const total = inputs.reduce((s, t) => s + t.data.byteLength, 0) + (labels?.byteLength ?? 0);
  if (total + SLACK <= limit || n <= 1) return [[0, n]];
  for (const t of inputs) {
    if (t.dims[0] !== n) {
      throw new ProtocolError(
        "batch-too-large",
        `a batch of ${total} bytes exceeds the frame limit of ${limit} and its inputs do not share a batch dimension to split along ('${t.name}' has ${t.dims[0]}, expected ${n})`,
        { device, hint: "use a smaller batch size" },
      );
    }
  }
  const perSample = Math.ceil(total / n);
  const per = Math.floor((limit - SLACK) / perSample);
  if (per < 1) {
    throw new ProtocolError(
      "batch-too-large",
      `one sample takes ${perSample} bytes, over the frame limit of ${limit}`,
      { device, hint: "the model's input is too large to send to the board" },
    );
  }
  const parts: [number, number][] = [];
  for (let s = 0; s < n; s += per) parts.push([s, Math.min(n, s + per)]);
  return parts;
}

/** Samples [start, end) of each input (views, no copy). */
export function sliceInputs(inputs: HostTensor[], start: number, end: number): HostTensor[] {
  return inputs.map((t) => {
    const per = t.data.length / t.dims[0]!;
    return { ...t, dims: [end - start, ...t.dims.slice(1)], data: t.data.subarray(start * per, end * per) };
  });
}

/** The results of consecutive parts of one batch as the result of the whole batch (times add up, memory peaks). */
export function joinResults(parts: BatchResult[], sizes: number[], device: string): BatchResult {
  if (parts.length === 1) return parts[0]!;
  const first = parts[0]!;
  const n = sizes.reduce((a, b) => a + b, 0);
  const outputs = first.outputs.map((o, k) => {
    const pieces = parts.map((p, i) => {
      const t = p.outputs[k];
      if (!t || t.name !== o.name || t.dims[0] !== sizes[i]) {
        throw new ProtocolError(
          "batch-split",
          `output '${o.name}' of a split batch does not have the part's ${sizes[i]} samples first (dims ${JSON.stringify(t?.dims)})`,
          { device, hint: "use a batch size whose inputs fit one frame" },
        );
      }
      return t.data;
    });
    const Ctor = o.data.constructor as new (n: number) => TypedArray;
    const data = new Ctor(pieces.reduce((s, d) => s + d.length, 0));
    let at = 0;
    for (const d of pieces) {
      (data as Float32Array).set(d as Float32Array, at);
      at += d.length;
    }
    return { ...o, dims: [n, ...o.dims.slice(1)], data };
  });
  const sum = (f: (r: BatchResult) => number): number => parts.reduce((s, r) => s + f(r), 0);
  const ms = sum((r) => r.ms);
  return {
    outputs,
    ms,
    perSampleMs: ms / n,
    correct: parts.every((r) => r.correct !== null) ? sum((r) => r.correct!) : null,
    maxRSS: Math.max(...parts.map((r) => r.maxRSS)),
    runtime: first.runtime,
    ...(first.runtime === "tensorrt"
      ? {
          gpuComputeMs: parts.every((r) => typeof r.gpuComputeMs === "number")
            ? sum((r) => r.gpuComputeMs!)
            : null,
          wallMs: sum((r) => r.wallMs ?? 0),
        }
      : {}),
  };
}
