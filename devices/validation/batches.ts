/**
 * Running an evaluation set batch by batch and gathering what comes back: the batches (a short last batch padded),
 * the outputs of each tensor joined over the batches with the padding dropped, and the timings of one side's run.
 */
import type { HostTensor, TrtEngineInfo } from "../client.js";
import type { EvalSet } from "./options.js";
import type { Prepared } from "./prepare.js";

/** One side's run (host or board): the model's first output, the probed tensors, timings, memory. */
export interface RunResult {
  /** The first output, all samples. */
  output: Float32Array;
  outputDims: number[];
  /** The probe copy's tensors, and its first output (to check the probes changed nothing). */
  layers: Map<string, { data: Float32Array; dims: number[] }>;
  probeOutput?: Float32Array;
  perSampleMs: number[];
  batchMs: number[];
  peakRss: number;
  tensorrt?: TrtEngineInfo;
  gpuComputeMs?: number[];
}

export interface Batch {
  /** Index of the batch's first sample in the set. */
  start: number;
  /** Real samples in it (the rest is padding). */
  count: number;
  data: Float32Array;
}

export function batches(p: Prepared, set: EvalSet): Batch[] {
  const out = [];
  for (let start = 0; start < p.samples; start += p.batchSize) {
    const count = Math.min(p.batchSize, p.samples - start);
    // a short last batch is padded by repeating its last sample; the padding's results are dropped
    const data = new Float32Array(p.batchSize * p.sampleSize);
    data.set(set.inputs.subarray(start * p.sampleSize, (start + count) * p.sampleSize));
    for (let i = count; i < p.batchSize; i++)
      data.copyWithin(i * p.sampleSize, (count - 1) * p.sampleSize, count * p.sampleSize);
    out.push({ start, count, data });
  }
  return out;
}

/** Per tensor name, its results batch after batch. */
export type Gathered = Map<string, { parts: Float32Array[]; dims: number[] }>;

export function gather(names: string[]): Gathered {
  return new Map(names.map((n) => [n, { parts: [], dims: [] }]));
}

/** Keep one batch's result of `name`, without the padding. */
export function add(
  acc: Gathered,
  name: string,
  dims: readonly number[],
  data: Float32Array,
  p: Prepared,
  count: number,
): void {
  const a = acc.get(name)!;
  a.dims = [...dims];
  a.parts.push(firstSamples(data, p.batchSize, count));
}

export function joinParts(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, b) => a + b.length, 0));
  let off = 0;
  for (const x of parts) {
    out.set(x, off);
    off += x.length;
  }
  return out;
}

/** Keep the first `count` samples of a batch result. */
function firstSamples(data: Float32Array, batch: number, count: number): Float32Array {
  if (count === batch) return data;
  const per = data.length / batch;
  return data.slice(0, per * count);
}

/** A tensor the agent sent back, as float32 (compared in float). */
export const asFloat = (data: HostTensor["data"]): Float32Array =>
  data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>, Number);

/** One side's run from its gathered outputs and batch timings. */
export function finish(
  main: Gathered,
  probe: Gathered | undefined,
  batchMs: number[],
  p: Prepared,
  peakRss: number,
): RunResult {
  const out = main.get(p.outputName)!;
  const layers = new Map<string, { data: Float32Array; dims: number[] }>();
  for (const n of p.probe?.names ?? []) {
    const a = probe!.get(n)!;
    layers.set(n, { data: joinParts(a.parts), dims: a.dims });
  }
  return {
    output: joinParts(out.parts),
    outputDims: out.dims,
    layers,
    probeOutput: probe ? joinParts(probe.get(p.outputName)!.parts) : undefined,
    batchMs,
    perSampleMs: batchMs.map((m) => m / p.batchSize),
    peakRss,
  };
}
