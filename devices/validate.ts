/**
 * Validation: run one model on a board and on the host (onnxruntime-node, same bytes), and report how far the
 * board drifts — accuracy of each, top-1 agreement, per-class accuracy deltas, output differences in quantization
 * steps, the board's latency percentiles and peak memory. With a fake-quant simulation (the QAT checkpoint the model
 * was exported from) its accuracy and agreement with the board are reported too. With `layers`, intermediate
 * tensors are compared on both sides and the first layer whose values differ by more than `layerThreshold`
 * quantization steps is named. Fleets: several boards at once under a concurrency limit, one row per board.
 */
import { createHash } from "node:crypto";
import { checkTensorRt } from "../src/export/tensorrt.js";
import { decodeModel, encodeModel } from "../src/onnx/codec.js";
import { OnnxError } from "../src/onnx/errors.js";
import type { Graph, Model } from "../src/onnx/ir.js";
import { toFloat32 } from "../src/onnx/tensor.js";
import { openSession, run } from "../src/runtime/session.js";
import { detectBoard } from "./boards.js";
import type { AgentClient, HostTensor, TrtEngineInfo } from "./client.js";
import { DeviceError } from "./errors.js";
import { layerOf, probeList, type StepInfo, type StepKind, stepOf } from "./layers.js";
import { connectAgent } from "./setup.js";
import type { SimulationRequest } from "./simulation.js";
import type { Transport } from "./transport/channel.js";

export interface EvalSet {
  /** Inputs, sample after sample, float32. */
  inputs: Float32Array;
  /** The shape of one sample, e.g. [1, 28, 28]. */
  sampleShape: number[];
  /** Class labels, one per sample. */
  labels: ArrayLike<number>;
}

export type Runtime = "onnxruntime" | "tensorrt";

export interface ValidateOptions {
  /** Samples per run (default: the model's fixed batch size, else 32). */
  batchSize?: number;
  /**
   * Intermediate tensors to compare as well: value names, or "all" — every quantized activation (the
   * QuantizeLinear outputs; every node output of a float model). They are exposed as extra graph outputs of a probe
   * copy of the model, run beside the plain model on both sides.
   */
  layers?: string[] | "all";
  /** A compared tensor diverges when host and board differ by more than this many quantization steps (default 1). */
  layerThreshold?: number;
  /** Largest accuracy drop (host − board, as a fraction: 0.01 = one point) before `exceeded` is set. */
  maxDrift?: number;
  /** ORT intra-op threads on the board (default: ORT's choice). */
  threads?: number;
  /**
   * ORT session config on the host. Default: `session.x64quantprecision = 1` and `session.qdqisint8allowed = 1`,
   * so x86 int8 kernels do not saturate u8·s8 sums (ARM boards do not) and int8 stays int8.
   */
  hostConfig?: Record<string, string>;
  /** The fake-quant simulation to run on the host too (see `resolveSimulation`), or why there is none. */
  simulation?: SimulationRequest;
  /**
   * How the board runs the model: onnxruntime (the installed backend, default) or tensorrt — trtexec on the board
   * builds an engine (int8 from the QDQ scales) and runs each batch. TensorRT is unverified on real Jetson hardware.
   */
  runtime?: Runtime;
  /** tensorrt: the trtexec program on the board (default /usr/src/tensorrt/bin/trtexec, else trtexec on PATH). */
  trtexec?: string;
  /** tensorrt: inference iterations per batch; the batch latency is their median (default 10). */
  trtIterations?: number;
}

export const DEFAULT_HOST_CONFIG: Readonly<Record<string, string>> = {
  "session.x64quantprecision": "1",
  "session.qdqisint8allowed": "1",
};

/** Default of `layerThreshold`: more than one step apart is a divergence (one step is a rounding tie). */
export const DEFAULT_LAYER_THRESHOLD = 1;

export interface Stats {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

export interface Difference {
  name: string;
  maxAbs: number;
  meanAbs: number;
  /** The largest |value| on the host: maxAbs / refMaxAbs is the relative difference. */
  refMaxAbs: number;
  /** maxAbs in quantization steps (see stepKind). */
  maxSteps?: number;
  /** How one step is known: integer (a QuantizeLinear output), dequantize, accumulator, range (see layers.ts). */
  stepKind?: StepKind;
  /** One step in the tensor's units (the largest, when per channel). */
  stepSize?: number;
  /** dequantize/accumulator: the step per channel; integer: the QuantizeLinear's scale. */
  scale?: number | number[];
  /** Share of values that differ at all. */
  changed?: number;
  /** Counts of |host − board| per bin: edges (one more than counts) at 0, ½, 1, 2, 4, … steps (stepSize). */
  histogram?: { edges: number[]; counts: number[] };
}

/** A compared intermediate tensor (or a graph output), with the layer that computes it. */
export interface LayerDrift extends Difference {
  /** The node naming the layer (its Conv/Gemm/MatMul when it has one) and its op. */
  node: string;
  op: string;
  /** Every node of the layer's group (ORT fuses them into one integer kernel), and their ops. */
  nodes: string[];
  ops: string[];
  /** maxSteps > the threshold. */
  diverged: boolean;
  /** A graph output (compared anyway; last in the attribution order). */
  output?: boolean;
}

/** The first layer, in graph order, whose values differ by more than the threshold. */
export interface FirstDivergence {
  tensor: string;
  node: string;
  op: string;
  ops: string[];
  maxSteps: number;
  stepKind: StepKind;
  /** Share of the tensor's values that differ. */
  changed: number;
  threshold: number;
}

export interface ClassRow {
  label: number;
  count: number;
  host: number;
  board: number;
  /** board − host accuracy on this class. */
  delta: number;
}

/** The fake-quant simulation on the host: its accuracy and agreement with the host, or why it did not run. */
export type HostSimulation =
  | {
      available: true;
      /** The QAT checkpoint it ran. */
      source: string;
      step?: number;
      note?: string;
      accuracy: number;
      /** Share of samples whose top-1 class is the simulation's. */
      agreementWithHost: number;
    }
  | { available: false; reason: string };

/** The fake-quant simulation's side of one board's report. */
export type SimulationReport =
  | (Extract<HostSimulation, { available: true }> & {
      agreementWithBoard: number;
      /** simulation − board accuracy (positive: the board is worse than what QAT simulated). */
      drift: number;
    })
  | Extract<HostSimulation, { available: false }>;

export interface DeviceReport {
  device: string;
  board?: string;
  arch?: string;
  runtime: Runtime;
  samples: number;
  hostAccuracy: number;
  boardAccuracy: number;
  /** host − board accuracy (positive: the board is worse). */
  drift: number;
  /** Share of samples whose top-1 class is the same on both. */
  agreement: number;
  perClass: ClassRow[];
  output: Difference;
  /** The compared intermediate tensors, in graph order. */
  layers: LayerDrift[];
  /** With layers: the first diverging layer (null: none diverged; graph outputs included). */
  firstDivergence?: FirstDivergence | null;
  layerThreshold?: number;
  /**
   * With layers: largest |Δ| of the final output between the probe copy (tensors exposed) and the plain model, on
   * each side. 0 means exposing the tensors changed nothing ORT computes.
   */
  probe?: { host: number; board: number };
  simulation?: SimulationReport;
  /** Per-sample latency on the board (batch time / batch size), ms. */
  latencyMs: Stats;
  /** The same, for every batch run (what the percentiles are taken over). */
  latencySamplesMs: number[];
  batchLatencyMs: Stats;
  batchSize: number;
  /** The board agent's peak resident memory, bytes (tensorrt: the trtexec processes', sampled). */
  peakRssBytes: number;
  /** tensorrt: the engine trtexec built and its GPU compute time per batch. */
  tensorrt?: TrtEngineInfo & { gpuComputeMs: Stats | null };
  maxDrift?: number;
  /** drift > maxDrift: the CLI exits 1. */
  exceeded: boolean;
}

/** Nearest-rank percentiles. */
export function stats(values: number[]): Stats {
  if (!values.length)
    return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, mean: Number.NaN, max: Number.NaN };
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  return {
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    max: s.at(-1)!,
  };
}

interface Probe {
  bytes: Uint8Array;
  sha256: string;
  /** The exposed tensors. */
  names: string[];
}

interface Prepared {
  bytes: Uint8Array;
  sha256: string;
  model: Model;
  inputName: string;
  outputName: string;
  /** Input dims with a symbolic (or unknown) size: trtexec needs --shapes. */
  dynamic: boolean;
  /** The model has QuantizeLinear/DequantizeLinear nodes (tensorrt: build with int8). */
  quantized: boolean;
  probe?: Probe;
  batchSize: number;
  samples: number;
  sampleSize: number;
}

/** The DequantizeLinear scale behind a value (scalar, or per-axis with its axis), when it is a constant. */
export function dequantScale(g: Graph, value: string): { scale: Float32Array; axis: number } | undefined {
  const s = stepOf(g, value);
  return s.kind === "dequantize" ? { scale: s.scale, axis: s.axis } : undefined;
}

/** Differences of two runs of a tensor, also in quantization steps (`step`; "range" takes the host's range). */
export function difference(
  name: string,
  host: Float32Array,
  board: Float32Array,
  dims: number[],
  step: StepInfo,
): Difference {
  if (host.length !== board.length) {
    throw new DeviceError(
      "shape-mismatch",
      `'${name}': the board returned ${board.length} values, the host ${host.length}`,
    );
  }
  let maxAbs = 0;
  let sum = 0;
  let ref = 0;
  let changed = 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < host.length; i++) {
    const h = host[i]!;
    const d = Math.abs(h - board[i]!);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    if (d !== 0) changed++;
    sum += Number.isNaN(d) ? 0 : d;
    ref = Math.max(ref, Math.abs(h));
    if (h < lo) lo = h;
    if (h > hi) hi = h;
  }
  const scale =
    step.kind === "range" ? Float32Array.of(Math.max((hi - lo) / 255, Number.MIN_VALUE)) : step.scale;
  const axis = step.axis < 0 ? dims.length - 1 : step.axis;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const along = dims[axis] ?? 1;
  let maxSteps = 0;
  for (let i = 0; i < host.length; i++) {
    const s = scale.length === 1 ? scale[0]! : scale[Math.floor(i / inner) % along]!;
    const d = Math.abs(host[i]! - board[i]!);
    const v = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d / s;
    if (v > maxSteps) maxSteps = v;
  }
  const shown = step.kind === "integer" ? step.quantScale : scale;
  const histogram = stepHistogram(host, board, Math.max(...scale), maxAbs);
  return {
    name,
    maxAbs,
    meanAbs: host.length ? sum / host.length : 0,
    refMaxAbs: ref,
    maxSteps,
    stepKind: step.kind,
    stepSize: Math.max(...scale),
    ...(shown ? { scale: shown.length === 1 ? shown[0]! : Array.from(shown) } : {}),
    changed: host.length ? changed / host.length : 0,
    histogram,
  };
}

/** |host − board| counted in bins [0, ½), [½, 1), [1, 2), … steps of `step`, up to the largest difference. */
function stepHistogram(host: Float32Array, board: Float32Array, step: number, maxAbs: number) {
  const unit = step > 0 && Number.isFinite(step) ? step : Math.max(maxAbs, 1);
  const edges = [0, 0.5 * unit];
  while (edges.at(-1)! <= maxAbs && edges.length < 40 && Number.isFinite(maxAbs))
    edges.push(2 * edges.at(-1)!);
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (let i = 0; i < host.length; i++) {
    const d = Math.abs(host[i]! - board[i]!);
    let b = 0;
    while (b < counts.length - 1 && !(d < edges[b + 1]!)) b++;
    counts[b]!++;
  }
  return { edges, counts };
}

function usage(message: string, hint?: string): DeviceError {
  return new DeviceError("bad-option", message, { hint, exitCode: 2 });
}

/**
 * Refuse a QDQ model that breaks TensorRT's explicit-quantization rules (the exporter's own checks), naming the
 * nodes: TensorRT would fail to build it, or build something other than what was trained.
 */
export function assertTensorRtModel(model: Model): void {
  const issues = checkTensorRt(model.graph, model.opsets[""] ?? model.opsets["ai.onnx"] ?? 0);
  if (!issues.length) return;
  const where = (i: { node?: string; tensor?: string }): string =>
    [i.node && `node '${i.node}'`, i.tensor && `tensor '${i.tensor}'`].filter(Boolean).join(", ");
  throw new DeviceError(
    "not-for-tensorrt",
    `the model breaks TensorRT's explicit-quantization rules:\n${issues
      .slice(0, 8)
      .map((i) => `  ${where(i)}: ${i.message}`)
      .join("\n")}${issues.length > 8 ? `\n  … and ${issues.length - 8} more` : ""}`,
    { hint: "train with --qat tensorrt and export with `qat export --target tensorrt`", exitCode: 2 },
  );
}

function prepare(modelBytes: Uint8Array, set: EvalSet, opts: ValidateOptions): Prepared {
  const model = decodeModel(modelBytes);
  const g = model.graph;
  const inits = new Set(g.initializers.keys());
  const inputs = g.inputs.filter((v) => !inits.has(v.name));
  if (inputs.length !== 1) {
    throw new OnnxError(
      `validation feeds one input; the model has ${inputs.length} (${inputs.map((v) => v.name).join(", ")})`,
    );
  }
  const input = inputs[0]!;
  const sampleSize = set.sampleShape.reduce((a, b) => a * b, 1);
  if (!sampleSize || set.inputs.length % sampleSize) {
    throw new OnnxError(
      `the evaluation set has ${set.inputs.length} values, not a multiple of the sample shape [${set.sampleShape}]`,
    );
  }
  const samples = set.inputs.length / sampleSize;
  if (set.labels.length !== samples)
    throw new OnnxError(`the evaluation set has ${samples} samples but ${set.labels.length} labels`);
  const fixed = typeof input.shape?.[0] === "number" ? (input.shape[0] as number) : undefined;
  const batchSize = opts.batchSize ?? fixed ?? 32;
  if (fixed !== undefined && batchSize !== fixed) {
    throw new OnnxError(
      `the model's input '${input.name}' fixes the batch at ${fixed}; batchSize ${batchSize} cannot run`,
    );
  }
  const threshold = opts.layerThreshold ?? DEFAULT_LAYER_THRESHOLD;
  if (!(threshold >= 0)) throw usage(`the layer threshold must be ≥ 0 quantization steps, got ${threshold}`);
  const quantized = g.nodes.some((n) => n.opType === "QuantizeLinear" || n.opType === "DequantizeLinear");
  const runtime = opts.runtime ?? "onnxruntime";
  if (runtime !== "onnxruntime" && runtime !== "tensorrt")
    throw usage(`unknown runtime '${String(runtime)}'`, "choose onnxruntime or tensorrt");
  if (runtime === "tensorrt") {
    if (opts.layers && (opts.layers === "all" || opts.layers.length)) {
      throw usage(
        "--layers cannot run with --runtime tensorrt: TensorRT fuses layers into its own kernels, and marking " +
          "intermediate tensors as outputs would build another engine",
        "compare layers with the onnxruntime runtime",
      );
    }
    if (quantized) assertTensorRtModel(model);
  }
  let probe: Probe | undefined;
  const wanted = opts.layers ?? [];
  if (wanted === "all" || wanted.length) {
    const names = probeList(g, wanted).filter((n) => n !== g.outputs[0]!.name);
    const copy = decodeModel(modelBytes);
    const outNames = new Set(copy.graph.outputs.map((o) => o.name));
    for (const l of names) {
      if (!outNames.has(l)) copy.graph.outputs.push({ name: l, ...(copy.graph.valueInfo.get(l) ?? {}) });
    }
    const bytes = encodeModel(copy);
    probe = { bytes, sha256: createHash("sha256").update(bytes).digest("hex"), names };
  }
  return {
    bytes: modelBytes,
    sha256: createHash("sha256").update(modelBytes).digest("hex"),
    model,
    inputName: input.name,
    outputName: g.outputs[0]!.name,
    dynamic: !input.shape || input.shape.some((d) => typeof d !== "number"),
    quantized,
    probe,
    batchSize,
    samples,
    sampleSize,
  };
}

interface RunResult {
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

function batches(p: Prepared, set: EvalSet): { start: number; count: number; data: Float32Array }[] {
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

type Acc = Map<string, { parts: Float32Array[]; dims: number[] }>;

function collect(names: string[]): Acc {
  return new Map(names.map((n) => [n, { parts: [], dims: [] }]));
}

function add(
  acc: Acc,
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

function joinParts(parts: Float32Array[]): Float32Array {
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

const asFloat = (data: HostTensor["data"]): Float32Array =>
  data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>, Number);

function finish(
  main: Acc,
  probe: Acc | undefined,
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

interface HostRun extends RunResult {
  /** The simulation's first output, all samples (when it ran). */
  simulation?: Float32Array;
}

async function runOnHost(p: Prepared, set: EvalSet, opts: ValidateOptions): Promise<HostRun> {
  const config = { ...(opts.hostConfig ?? DEFAULT_HOST_CONFIG) };
  const session = await openSession(p.bytes, { config });
  const probe = p.probe ? await openSession(p.probe.bytes, { config }) : undefined;
  const simModel = opts.simulation && "model" in opts.simulation ? opts.simulation.model : undefined;
  // the simulation runs as QAT ran it and as the parity check runs it: Q/DQ kept in float (optimisation "basic")
  const sim = simModel ? await openSession(simModel, { optimization: "basic" }) : undefined;
  const main = collect([p.outputName]);
  const probed = p.probe ? collect([p.outputName, ...p.probe.names]) : undefined;
  const simAcc = sim ? collect([p.outputName]) : undefined;
  const ms: number[] = [];
  try {
    for (const b of batches(p, set)) {
      const feeds = {
        [p.inputName]: { dtype: "float32" as const, dims: [p.batchSize, ...set.sampleShape], data: b.data },
      };
      const t0 = performance.now();
      const res = await run(session, feeds, [p.outputName]);
      ms.push(performance.now() - t0);
      add(main, p.outputName, res[p.outputName]!.dims, toFloat32(res[p.outputName]!), p, b.count);
      if (probe && probed) {
        const names = [p.outputName, ...p.probe!.names];
        const r = await run(probe, feeds, names);
        for (const n of names) add(probed, n, r[n]!.dims, toFloat32(r[n]!), p, b.count);
      }
      if (sim && simAcc) {
        const r = await run(sim, feeds, [p.outputName]);
        add(simAcc, p.outputName, r[p.outputName]!.dims, toFloat32(r[p.outputName]!), p, b.count);
      }
    }
  } finally {
    await session.release();
    await probe?.release();
    await sim?.release();
  }
  const r: HostRun = finish(main, probed, ms, p, 0);
  if (simAcc) r.simulation = joinParts(simAcc.get(p.outputName)!.parts);
  return r;
}

async function runOnBoard(
  client: AgentClient,
  p: Prepared,
  set: EvalSet,
  opts: ValidateOptions,
): Promise<RunResult> {
  const runtime = opts.runtime ?? "onnxruntime";
  await client.put(p.bytes, { kind: "model", name: "validation" });
  if (p.probe)
    await client.put(p.probe.bytes, { kind: "model", name: "validation probe (with layer outputs)" });
  const ev = await client.openEvaluation(
    p.sha256,
    runtime === "tensorrt"
      ? {
          runtime,
          trtexec: opts.trtexec,
          inputs: [{ name: p.inputName, dims: [p.batchSize, ...set.sampleShape] }],
          dynamic: p.dynamic,
          int8: p.quantized,
          iterations: opts.trtIterations,
        }
      : { threads: opts.threads },
  );
  const pev = p.probe ? await client.openEvaluation(p.probe.sha256, { threads: opts.threads }) : undefined;
  const main = collect([p.outputName]);
  const probed = p.probe ? collect([p.outputName, ...p.probe.names]) : undefined;
  const ms: number[] = [];
  const gpu: number[] = [];
  let peak = 0;
  try {
    for (const b of batches(p, set)) {
      const labels = new BigInt64Array(p.batchSize);
      for (let i = 0; i < p.batchSize; i++)
        labels[i] = BigInt(set.labels[b.start + Math.min(i, b.count - 1)]!);
      const tensor: HostTensor = {
        name: p.inputName,
        dtype: "float32",
        dims: [p.batchSize, ...set.sampleShape],
        data: b.data,
      };
      const r = await client.runBatch(ev.session, [tensor], labels, [p.outputName]);
      ms.push(r.ms);
      if (typeof r.gpuComputeMs === "number") gpu.push(r.gpuComputeMs);
      peak = Math.max(peak, r.maxRSS);
      for (const o of r.outputs) add(main, o.name, o.dims, asFloat(o.data), p, b.count);
      if (pev && probed) {
        const q = await client.runBatch(pev.session, [tensor], undefined, [p.outputName, ...p.probe!.names]);
        peak = Math.max(peak, q.maxRSS);
        for (const o of q.outputs) add(probed, o.name, o.dims, asFloat(o.data), p, b.count);
      }
    }
  } finally {
    const closed = await client.closeEvaluation(ev.session);
    peak = Math.max(peak, closed.maxRSS);
    if (pev) peak = Math.max(peak, (await client.closeEvaluation(pev.session)).maxRSS);
  }
  const r = finish(main, probed, ms, p, peak);
  if (ev.tensorrt) {
    r.tensorrt = ev.tensorrt;
    r.gpuComputeMs = gpu;
  }
  return r;
}

function argmaxes(out: Float32Array, samples: number): Int32Array {
  const k = out.length / samples;
  const pred = new Int32Array(samples);
  for (let i = 0; i < samples; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (out[i * k + j]! > out[i * k + best]!) best = j;
    pred[i] = best;
  }
  return pred;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(m, d);
  }
  return m;
}

/**
 * Per-layer drift in graph order (the graph output last) and the first layer above the threshold. A tensor's
 * layer is the node group that computes it (see layers.ts).
 */
export function attributeLayers(
  g: Graph,
  compared: { name: string; diff: Difference; output?: boolean }[],
  threshold: number,
): { layers: LayerDrift[]; first: FirstDivergence | null } {
  const stops = new Set([...compared.map((c) => c.name), ...g.inputs.map((v) => v.name)]);
  const rows = compared.map((c) => {
    const l = layerOf(g, c.name, stops);
    const row: LayerDrift = {
      ...c.diff,
      node: l.node,
      op: l.op,
      nodes: l.nodes,
      ops: l.ops,
      diverged: (c.diff.maxSteps ?? 0) > threshold,
      ...(c.output ? { output: true } : {}),
    };
    return { row, order: c.output ? Number.MAX_SAFE_INTEGER : l.order };
  });
  rows.sort((a, b) => a.order - b.order);
  const hit = rows.find((r) => r.row.diverged)?.row;
  return {
    layers: rows.map((r) => r.row),
    first: hit
      ? {
          tensor: hit.name,
          node: hit.node,
          op: hit.op,
          ops: hit.ops,
          maxSteps: hit.maxSteps ?? 0,
          stepKind: hit.stepKind ?? "range",
          changed: hit.changed ?? 0,
          threshold,
        }
      : null,
  };
}

function compare(
  device: string,
  p: Prepared,
  set: EvalSet,
  host: HostRun,
  board: RunResult,
  opts: ValidateOptions,
  sim: SimulationRequest | undefined,
): DeviceReport {
  const hp = argmaxes(host.output, p.samples);
  const bp = argmaxes(board.output, p.samples);
  let hc = 0;
  let bc = 0;
  let agree = 0;
  const classes = new Map<number, { count: number; host: number; board: number }>();
  for (let i = 0; i < p.samples; i++) {
    const y = Number(set.labels[i]);
    const c = classes.get(y) ?? { count: 0, host: 0, board: 0 };
    c.count++;
    if (hp[i] === y) {
      hc++;
      c.host++;
    }
    if (bp[i] === y) {
      bc++;
      c.board++;
    }
    if (hp[i] === bp[i]) agree++;
    classes.set(y, c);
  }
  const g = p.model.graph;
  const perClass = [...classes.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([label, c]) => ({
      label,
      count: c.count,
      host: c.host / c.count,
      board: c.board / c.count,
      delta: (c.board - c.host) / c.count,
    }));
  const hostAccuracy = hc / p.samples;
  const boardAccuracy = bc / p.samples;
  const drift = hostAccuracy - boardAccuracy;
  const output = difference(
    p.outputName,
    host.output,
    board.output,
    [p.samples, ...host.outputDims.slice(1)],
    stepOf(g, p.outputName),
  );
  const report: DeviceReport = {
    device,
    runtime: opts.runtime ?? "onnxruntime",
    samples: p.samples,
    hostAccuracy,
    boardAccuracy,
    drift,
    agreement: agree / p.samples,
    perClass,
    output,
    layers: [],
    latencyMs: stats(board.perSampleMs),
    latencySamplesMs: board.perSampleMs,
    batchLatencyMs: stats(board.batchMs),
    batchSize: p.batchSize,
    peakRssBytes: board.peakRss,
    maxDrift: opts.maxDrift,
    exceeded: opts.maxDrift !== undefined && drift > opts.maxDrift,
  };
  if (p.probe) {
    const threshold = opts.layerThreshold ?? DEFAULT_LAYER_THRESHOLD;
    const compared: { name: string; diff: Difference; output?: boolean }[] = p.probe.names.map((l) => {
      const h = host.layers.get(l)!;
      const b = board.layers.get(l)!;
      return { name: l, diff: difference(l, h.data, b.data, [p.samples, ...h.dims.slice(1)], stepOf(g, l)) };
    });
    compared.push({ name: p.outputName, diff: output, output: true });
    const a = attributeLayers(g, compared, threshold);
    report.layers = a.layers.filter((l) => !l.output);
    report.firstDivergence = a.first;
    report.layerThreshold = threshold;
    report.probe = {
      host: maxAbsDiff(host.output, host.probeOutput!),
      board: maxAbsDiff(board.output, board.probeOutput!),
    };
  }
  if (sim) {
    if ("unavailable" in sim) report.simulation = { available: false, reason: sim.unavailable };
    else if (host.simulation) {
      const sp = argmaxes(host.simulation, p.samples);
      let sc = 0;
      let withBoard = 0;
      let withHost = 0;
      for (let i = 0; i < p.samples; i++) {
        if (sp[i] === Number(set.labels[i])) sc++;
        if (sp[i] === bp[i]) withBoard++;
        if (sp[i] === hp[i]) withHost++;
      }
      report.simulation = {
        available: true,
        source: sim.source,
        ...(sim.step !== undefined ? { step: sim.step } : {}),
        ...(sim.note ? { note: sim.note } : {}),
        accuracy: sc / p.samples,
        agreementWithBoard: withBoard / p.samples,
        agreementWithHost: withHost / p.samples,
        drift: sc / p.samples - boardAccuracy,
      };
    }
  }
  if (board.tensorrt) {
    report.tensorrt = {
      ...board.tensorrt,
      gpuComputeMs: board.gpuComputeMs?.length ? stats(board.gpuComputeMs) : null,
    };
  }
  return report;
}

/** The host's side of a validation, computed once and shared by every board of a fleet. */
export interface HostReference {
  prepared: Prepared;
  result: HostRun;
}

export async function hostReference(
  modelBytes: Uint8Array,
  set: EvalSet,
  opts: ValidateOptions = {},
): Promise<HostReference> {
  const prepared = prepare(modelBytes, set, opts);
  return { prepared, result: await runOnHost(prepared, set, opts) };
}

/** Validate a model on one board against the host. */
export async function validateModel(
  modelBytes: Uint8Array,
  set: EvalSet,
  t: Transport,
  opts: ValidateOptions = {},
  ref?: HostReference,
): Promise<DeviceReport> {
  const host = ref ?? (await hostReference(modelBytes, set, opts));
  const { client, hello } = await connectAgent(t);
  try {
    const board = await runOnBoard(client, host.prepared, set, opts);
    const report = compare(t.label, host.prepared, set, host.result, board, opts, opts.simulation);
    const det = detectBoard(hello.facts);
    return { ...report, board: det.profile.id, arch: hello.facts.arch };
  } finally {
    await client.close();
  }
}

export interface FleetTarget {
  name: string;
  /** Connect (called when the target's turn comes, within the concurrency limit). */
  open: () => Promise<Transport>;
}

export interface FleetRow {
  device: string;
  report?: DeviceReport;
  /** Why this board has no report (cannot connect, agent missing, ...). */
  error?: { code: string; message: string };
}

export interface FleetReport {
  rows: FleetRow[];
  hostAccuracy: number;
  samples: number;
  runtime: Runtime;
  /** The fake-quant simulation on the host (when asked for). */
  simulation?: HostSimulation;
  /** Some board drifted more than maxDrift, or failed. */
  exceeded: boolean;
  failed: number;
}

/** Validate on several boards at once (at most `concurrency` at a time), one row per board. */
export async function validateFleet(
  modelBytes: Uint8Array,
  set: EvalSet,
  targets: FleetTarget[],
  opts: ValidateOptions & { concurrency?: number } = {},
): Promise<FleetReport> {
  const ref = await hostReference(modelBytes, set, opts);
  const rows: FleetRow[] = new Array(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      const target = targets[i]!;
      let t: Transport | undefined;
      try {
        t = await target.open();
        rows[i] = {
          device: target.name,
          report: { ...(await validateModel(modelBytes, set, t, opts, ref)), device: target.name },
        };
      } catch (e) {
        const err = e as Error & { code?: string };
        rows[i] = {
          device: target.name,
          error: { code: typeof err.code === "string" ? err.code : "error", message: err.message },
        };
      } finally {
        await t?.close().catch(() => {});
      }
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 4, targets.length));
  await Promise.all(Array.from({ length: n }, worker));
  const labels = Array.from({ length: ref.prepared.samples }, (_, i) => Number(set.labels[i]));
  const hp = argmaxes(ref.result.output, ref.prepared.samples);
  const hostCorrect = labels.filter((y, i) => hp[i] === y).length;
  const failed = rows.filter((r) => r.error).length;
  const report: FleetReport = {
    rows,
    hostAccuracy: hostCorrect / ref.prepared.samples,
    samples: ref.prepared.samples,
    runtime: opts.runtime ?? "onnxruntime",
    exceeded: failed > 0 || rows.some((r) => r.report?.exceeded),
    failed,
  };
  const sim = opts.simulation;
  if (sim && "unavailable" in sim) report.simulation = { available: false, reason: sim.unavailable };
  else if (sim && ref.result.simulation) {
    const sp = argmaxes(ref.result.simulation, ref.prepared.samples);
    report.simulation = {
      available: true,
      source: sim.source,
      ...(sim.step !== undefined ? { step: sim.step } : {}),
      ...(sim.note ? { note: sim.note } : {}),
      accuracy: labels.filter((y, i) => sp[i] === y).length / labels.length,
      agreementWithHost: labels.filter((_, i) => sp[i] === hp[i]).length / labels.length,
    };
  }
  return report;
}

/** The fleet as a text table (one row per board). */
export function formatFleet(f: FleetReport): string {
  const head = [
    "device",
    "board",
    "host acc",
    "board acc",
    "drift",
    "agree",
    "max|Δ|",
    "steps",
    "p50 ms",
    "p99 ms",
    "peak MB",
  ];
  const withSim = f.simulation?.available === true;
  if (withSim) head.push("sim acc", "sim agree");
  const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
  const body = f.rows.map((r) => {
    const x = r.report;
    if (!x) return [r.device, `error: ${r.error?.code ?? "?"}`, ...head.slice(2).map(() => "")];
    const row = [
      r.device,
      x.board ?? "",
      pct(x.hostAccuracy),
      pct(x.boardAccuracy),
      `${(x.drift * 100).toFixed(2)} pt${x.exceeded ? " !" : ""}`,
      pct(x.agreement),
      x.output.maxAbs.toExponential(2),
      x.output.maxSteps === undefined ? "-" : x.output.maxSteps.toFixed(2),
      x.latencyMs.p50.toFixed(2),
      x.latencyMs.p99.toFixed(2),
      x.peakRssBytes ? (x.peakRssBytes / 2 ** 20).toFixed(0) : "-",
    ];
    if (withSim) {
      const s = x.simulation;
      row.push(s?.available ? pct(s.accuracy) : "-", s?.available ? pct(s.agreementWithBoard) : "-");
    }
    return row;
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  const notes = f.rows
    .filter((r) => r.error)
    .map((r) =>
      r.error!.message.startsWith(`${r.device}: `) ? r.error!.message : `${r.device}: ${r.error!.message}`,
    );
  return [line(head), ...body.map(line), ...notes].join("\n");
}
