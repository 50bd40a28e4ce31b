/**
 * Validation: run one model on a board and on the host (onnxruntime-node, same bytes), and report how far the
 * board drifts — accuracy of each, top-1 agreement, per-class accuracy deltas, output differences (also in
 * quantization steps when an output comes from a DequantizeLinear with a readable scale), the board's latency
 * percentiles and peak memory. Fleets: several boards at once under a concurrency limit, one row per board.
 */
import { createHash } from "node:crypto";
import { decodeModel, encodeModel } from "../src/onnx/codec.js";
import { OnnxError } from "../src/onnx/errors.js";
import { attrInt, type Graph, type Model } from "../src/onnx/ir.js";
import { toFloat32 } from "../src/onnx/tensor.js";
import { openSession, run } from "../src/runtime/session.js";
import { detectBoard } from "./boards.js";
import type { AgentClient, HostTensor } from "./client.js";
import { DeviceError } from "./errors.js";
import { connectAgent } from "./setup.js";
import type { Transport } from "./transport/channel.js";

export interface EvalSet {
  /** Inputs, sample after sample, float32. */
  inputs: Float32Array;
  /** The shape of one sample, e.g. [1, 28, 28]. */
  sampleShape: number[];
  /** Class labels, one per sample. */
  labels: ArrayLike<number>;
}

export interface ValidateOptions {
  /** Samples per run (default: the model's fixed batch size, else 32). */
  batchSize?: number;
  /** Intermediate values to compare as well: added as extra graph outputs to a probe copy of the model. */
  layers?: string[];
  /** Largest accuracy drop (host − board, as a fraction: 0.01 = one point) before `exceeded` is set. */
  maxDrift?: number;
  /** ORT intra-op threads on the board (default: ORT's choice). */
  threads?: number;
  /**
   * ORT session config on the host. Default: `session.x64quantprecision = 1` and `session.qdqisint8allowed = 1`,
   * so x86 int8 kernels do not saturate u8·s8 sums (ARM boards do not) and int8 stays int8.
   */
  hostConfig?: Record<string, string>;
}

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
  /** maxAbs in quantization steps, when the value comes out of a DequantizeLinear with a constant scale. */
  maxSteps?: number;
  scale?: number | number[];
}

export interface ClassRow {
  label: number;
  count: number;
  host: number;
  board: number;
  /** board − host accuracy on this class. */
  delta: number;
}

export interface DeviceReport {
  device: string;
  board?: string;
  arch?: string;
  samples: number;
  hostAccuracy: number;
  boardAccuracy: number;
  /** host − board accuracy (positive: the board is worse). */
  drift: number;
  /** Share of samples whose top-1 class is the same on both. */
  agreement: number;
  perClass: ClassRow[];
  output: Difference;
  layers: Difference[];
  /** Per-sample latency on the board (batch time / batch size), ms. */
  latencyMs: Stats;
  batchLatencyMs: Stats;
  batchSize: number;
  /** The board agent's peak resident memory, bytes. */
  peakRssBytes: number;
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

interface Prepared {
  bytes: Uint8Array;
  sha256: string;
  model: Model;
  inputName: string;
  outputName: string;
  layers: string[];
  batchSize: number;
  samples: number;
  sampleSize: number;
}

function constantOf(g: Graph, name: string): Float32Array | undefined {
  const init = g.initializers.get(name);
  if (init) return toFloat32(init);
  const n = g.nodes.find((x) => x.opType === "Constant" && x.outputs[0] === name);
  const v = n?.attrs.value;
  if (v?.type === "tensor") return toFloat32(v.value);
  if (n?.attrs.value_float?.type === "float") return Float32Array.of(n.attrs.value_float.value);
  return undefined;
}

/** The DequantizeLinear scale behind a value (scalar, or per-axis with its axis), when it is a constant. */
export function dequantScale(g: Graph, value: string): { scale: Float32Array; axis: number } | undefined {
  const n = g.nodes.find((x) => x.outputs.includes(value));
  if (n?.opType !== "DequantizeLinear" || !n.inputs[1]) return undefined;
  const scale = constantOf(g, n.inputs[1]);
  if (!scale) return undefined;
  return { scale, axis: attrInt(n, "axis", 1) };
}

function difference(
  name: string,
  host: Float32Array,
  board: Float32Array,
  dims: number[],
  dq?: { scale: Float32Array; axis: number },
): Difference {
  if (host.length !== board.length) {
    throw new DeviceError(
      "shape-mismatch",
      `'${name}': the board returned ${board.length} values, the host ${host.length}`,
    );
  }
  let maxAbs = 0;
  let sum = 0;
  let maxSteps = 0;
  let ref = 0;
  const axis = dq ? (dq.axis < 0 ? dq.axis + dims.length : dq.axis) : 0;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const along = dims[axis] ?? 1;
  for (let i = 0; i < host.length; i++) {
    const d = Math.abs(host[i]! - board[i]!);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    sum += d;
    ref = Math.max(ref, Math.abs(host[i]!));
    if (dq) {
      const s = dq.scale.length === 1 ? dq.scale[0]! : dq.scale[Math.floor(i / inner) % along]!;
      maxSteps = Math.max(maxSteps, d / s);
    }
  }
  const out: Difference = { name, maxAbs, meanAbs: host.length ? sum / host.length : 0, refMaxAbs: ref };
  if (dq) {
    out.maxSteps = maxSteps;
    out.scale = dq.scale.length === 1 ? dq.scale[0]! : Array.from(dq.scale);
  }
  return out;
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
  const layers = opts.layers ?? [];
  let bytes = modelBytes;
  if (layers.length) {
    const produced = new Set(g.nodes.flatMap((n) => n.outputs));
    for (const l of layers) {
      if (!produced.has(l)) throw new OnnxError(`no node produces a value named '${l}'`, { value: l });
    }
    const outNames = new Set(g.outputs.map((o) => o.name));
    for (const l of layers) if (!outNames.has(l)) g.outputs.push({ name: l, ...(g.valueInfo.get(l) ?? {}) });
    bytes = encodeModel(model);
  }
  return {
    bytes,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    model,
    inputName: input.name,
    outputName: g.outputs[0]!.name,
    layers,
    batchSize,
    samples,
    sampleSize,
  };
}

interface RunResult {
  /** The first output, all samples. */
  output: Float32Array;
  outputDims: number[];
  layers: Map<string, { data: Float32Array; dims: number[] }>;
  perSampleMs: number[];
  batchMs: number[];
  peakRss: number;
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

function collect(names: string[]): Map<string, { parts: Float32Array[]; dims: number[] }> {
  return new Map(names.map((n) => [n, { parts: [], dims: [] }]));
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

async function runOnHost(p: Prepared, set: EvalSet, opts: ValidateOptions): Promise<RunResult> {
  const session = await openSession(p.bytes, {
    config: opts.hostConfig ?? { "session.x64quantprecision": "1", "session.qdqisint8allowed": "1" },
  });
  const names = [p.outputName, ...p.layers];
  const acc = collect(names);
  const ms: number[] = [];
  for (const b of batches(p, set)) {
    const t0 = performance.now();
    const res = await run(
      session,
      { [p.inputName]: { dtype: "float32", dims: [p.batchSize, ...set.sampleShape], data: b.data } },
      names,
    );
    ms.push(performance.now() - t0);
    for (const n of names) {
      const t = res[n]!;
      const a = acc.get(n)!;
      a.dims = t.dims;
      a.parts.push(firstSamples(toFloat32(t), p.batchSize, b.count));
    }
  }
  await session.release();
  return finish(acc, names, ms, p, 0);
}

function finish(
  acc: Map<string, { parts: Float32Array[]; dims: number[] }>,
  names: string[],
  batchMs: number[],
  p: Prepared,
  peakRss: number,
): RunResult {
  const main = acc.get(names[0]!)!;
  const layers = new Map<string, { data: Float32Array; dims: number[] }>();
  for (const n of names.slice(1))
    layers.set(n, { data: joinParts(acc.get(n)!.parts), dims: acc.get(n)!.dims });
  return {
    output: joinParts(main.parts),
    outputDims: main.dims,
    layers,
    batchMs,
    perSampleMs: batchMs.map((m) => m / p.batchSize),
    peakRss,
  };
}

async function runOnBoard(
  client: AgentClient,
  p: Prepared,
  set: EvalSet,
  opts: ValidateOptions,
): Promise<RunResult> {
  await client.put(p.bytes, {
    kind: "model",
    name: p.layers.length ? "validation probe (with layer outputs)" : "validation",
  });
  const ev = await client.openEvaluation(p.sha256, { threads: opts.threads });
  const names = [p.outputName, ...p.layers];
  const acc = collect(names);
  const ms: number[] = [];
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
      const r = await client.runBatch(ev.session, [tensor], labels, names);
      ms.push(r.ms);
      peak = Math.max(peak, r.maxRSS);
      for (const o of r.outputs) {
        const a = acc.get(o.name)!;
        a.dims = o.dims;
        const f =
          o.data instanceof Float32Array ? o.data : Float32Array.from(o.data as ArrayLike<number>, Number);
        a.parts.push(firstSamples(f, p.batchSize, b.count));
      }
    }
  } finally {
    const closed = await client.closeEvaluation(ev.session);
    peak = Math.max(peak, closed.maxRSS);
  }
  return finish(acc, names, ms, p, peak);
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

function compare(
  device: string,
  p: Prepared,
  set: EvalSet,
  host: RunResult,
  board: RunResult,
  opts: ValidateOptions,
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
  return {
    device,
    samples: p.samples,
    hostAccuracy,
    boardAccuracy,
    drift,
    agreement: agree / p.samples,
    perClass,
    output: difference(
      p.outputName,
      host.output,
      board.output,
      [p.samples, ...host.outputDims.slice(1)],
      dequantScale(g, p.outputName),
    ),
    layers: p.layers.map((l) => {
      const h = host.layers.get(l)!;
      const b = board.layers.get(l)!;
      return difference(l, h.data, b.data, [p.samples, ...h.dims.slice(1)], dequantScale(g, l));
    }),
    latencyMs: stats(board.perSampleMs),
    batchLatencyMs: stats(board.batchMs),
    batchSize: p.batchSize,
    peakRssBytes: board.peakRss,
    maxDrift: opts.maxDrift,
    exceeded: opts.maxDrift !== undefined && drift > opts.maxDrift,
  };
}

/** The host's side of a validation, computed once and shared by every board of a fleet. */
export interface HostReference {
  prepared: Prepared;
  result: RunResult;
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
    const report = compare(t.label, host.prepared, set, host.result, board, opts);
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
  const hostCorrect = argmaxes(ref.result.output, ref.prepared.samples).filter(
    (p, i) => p === Number(set.labels[i]),
  ).length;
  const failed = rows.filter((r) => r.error).length;
  return {
    rows,
    hostAccuracy: hostCorrect / ref.prepared.samples,
    samples: ref.prepared.samples,
    exceeded: failed > 0 || rows.some((r) => r.report?.exceeded),
    failed,
  };
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
  const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
  const body = f.rows.map((r) => {
    const x = r.report;
    if (!x) return [r.device, `error: ${r.error?.code ?? "?"}`, "", "", "", "", "", "", "", "", ""];
    return [
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
      (x.peakRssBytes / 2 ** 20).toFixed(0),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  const notes = f.rows.filter((r) => r.error).map((r) => `${r.device}: ${r.error!.message}`);
  return [line(head), ...body.map(line), ...notes].join("\n");
}
