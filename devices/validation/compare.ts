/**
 * Comparing the board's run with the host's: top-1 accuracy of each and their agreement, accuracy per class, the
 * output difference in quantization steps, per-layer drift with the first diverging layer, the fake-quant
 * simulation's accuracy and agreement, and the board's latency and memory — one DeviceReport.
 */
import type { Graph } from "../../src/onnx/ir.js";
import { argmaxRows } from "../../src/train/evaluate.js";
import { layerOf, stepOf } from "../layers.js";
import type { SimulationRequest } from "../simulation.js";
import type { RunResult } from "./batches.js";
import type { HostRun } from "./host-run.js";
import { DEFAULT_LAYER_THRESHOLD, type EvalSet, type ValidateOptions } from "./options.js";
import type { Prepared } from "./prepare.js";
import type {
  ClassRow,
  DeviceReport,
  Difference,
  FirstDivergence,
  HostSimulation,
  LayerDrift,
  SimulationReport,
} from "./report.js";
import { difference, maxAbsDiff, stats } from "./statistics.js";

/** Share of samples where `a` and `b` name the same class. */
function agreement(a: Int32Array, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === Number(b[i])) same++;
  return same / a.length;
}

/** Accuracy per class of host and board, classes in ascending order. */
function perClass(labels: ArrayLike<number>, host: Int32Array, board: Int32Array): ClassRow[] {
  const classes = new Map<number, { count: number; host: number; board: number }>();
  for (let i = 0; i < host.length; i++) {
    const y = Number(labels[i]);
    const c = classes.get(y) ?? { count: 0, host: 0, board: 0 };
    c.count++;
    if (host[i] === y) c.host++;
    if (board[i] === y) c.board++;
    classes.set(y, c);
  }
  return [...classes.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([label, c]) => ({
      label,
      count: c.count,
      host: c.host / c.count,
      board: c.board / c.count,
      delta: (c.board - c.host) / c.count,
    }));
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

/** The probed tensors compared on both sides, the output last: the report's layer fields. */
function layerFields(
  p: Prepared,
  host: RunResult,
  board: RunResult,
  output: Difference,
  threshold: number,
): Pick<DeviceReport, "layers" | "firstDivergence" | "layerThreshold" | "probe"> {
  const g = p.model.graph;
  const compared: { name: string; diff: Difference; output?: boolean }[] = p.probe!.names.map((l) => {
    const h = host.layers.get(l)!;
    const b = board.layers.get(l)!;
    return { name: l, diff: difference(l, h.data, b.data, [p.samples, ...h.dims.slice(1)], stepOf(g, l)) };
  });
  compared.push({ name: p.outputName, diff: output, output: true });
  const a = attributeLayers(g, compared, threshold);
  return {
    layers: a.layers.filter((l) => !l.output),
    firstDivergence: a.first,
    layerThreshold: threshold,
    probe: {
      host: maxAbsDiff(host.output, host.probeOutput!),
      board: maxAbsDiff(board.output, board.probeOutput!),
    },
  };
}

/** The simulation's host-side summary: where it came from, its accuracy and agreement with the host. */
export function hostSimulation(
  sim: SimulationRequest,
  predicted: Int32Array | undefined,
  labels: ArrayLike<number>,
  host: Int32Array,
): HostSimulation | undefined {
  if ("unavailable" in sim) return { available: false, reason: sim.unavailable };
  if (!predicted) return undefined;
  return {
    available: true,
    source: sim.source,
    ...(sim.step !== undefined ? { step: sim.step } : {}),
    ...(sim.note ? { note: sim.note } : {}),
    accuracy: agreement(predicted, labels),
    agreementWithHost: agreement(predicted, host),
  };
}

/** The simulation's side of one board's report. */
function simulationFields(
  sim: SimulationRequest,
  host: HostRun,
  labels: ArrayLike<number>,
  hp: Int32Array,
  bp: Int32Array,
  boardAccuracy: number,
): SimulationReport | undefined {
  const sp = host.simulation ? argmaxRows(host.simulation, hp.length) : undefined;
  const h = hostSimulation(sim, sp, labels, hp);
  if (!h?.available) return h;
  const { agreementWithHost, ...rest } = h;
  return {
    ...rest,
    agreementWithBoard: agreement(sp!, bp),
    agreementWithHost,
    drift: h.accuracy - boardAccuracy,
  };
}

/** One board's report from the host's run and the board's. */
export function compare(
  device: string,
  p: Prepared,
  set: EvalSet,
  host: HostRun,
  board: RunResult,
  opts: ValidateOptions,
): DeviceReport {
  const labels = Array.from({ length: p.samples }, (_, i) => Number(set.labels[i]));
  const hp = argmaxRows(host.output, p.samples);
  const bp = argmaxRows(board.output, p.samples);
  const hostAccuracy = agreement(hp, labels);
  const boardAccuracy = agreement(bp, labels);
  const drift = hostAccuracy - boardAccuracy;
  const output = difference(
    p.outputName,
    host.output,
    board.output,
    [p.samples, ...host.outputDims.slice(1)],
    stepOf(p.model.graph, p.outputName),
  );
  const report: DeviceReport = {
    device,
    runtime: opts.runtime ?? "onnxruntime",
    samples: p.samples,
    hostAccuracy,
    boardAccuracy,
    drift,
    agreement: agreement(hp, bp),
    perClass: perClass(labels, hp, bp),
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
  if (p.probe)
    Object.assign(
      report,
      layerFields(p, host, board, output, opts.layerThreshold ?? DEFAULT_LAYER_THRESHOLD),
    );
  const sim = opts.simulation && simulationFields(opts.simulation, host, labels, hp, bp, boardAccuracy);
  if (sim) report.simulation = sim;
  if (board.tensorrt) {
    report.tensorrt = {
      ...board.tensorrt,
      gpuComputeMs: board.gpuComputeMs?.length ? stats(board.gpuComputeMs) : null,
    };
  }
  return report;
}
