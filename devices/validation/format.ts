/**
 * The drift report as text for a person: the fleet table (one row per board), then per board its accuracy and
 * drift, agreement, the simulation, per-class deltas, the output difference, the per-layer table with the first
 * divergence, latency, TensorRT and memory. `qat validate` prints exactly this.
 */
import { DEFAULT_LAYER_THRESHOLD } from "./options.js";
import type { DeviceReport, FleetReport, FleetRow } from "./report.js";
import { timingCell } from "./timing.js";

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

/** Rows of cells as columns padded to their widest cell, two spaces apart. */
function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd(),
  );
}

/** One board's row of the fleet table. */
function fleetRow(r: FleetRow, width: number, withSim: boolean): string[] {
  const x = r.report;
  if (!x) return [r.device, `error: ${r.error?.code ?? "?"}`, ...new Array<string>(width - 2).fill("")];
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
    timingCell(x.latency),
    x.peakRssBytes ? (x.peakRssBytes / 2 ** 20).toFixed(0) : "-",
  ];
  if (withSim) {
    const s = x.simulation;
    row.push(s?.available ? pct(s.accuracy) : "-", s?.available ? pct(s.agreementWithBoard) : "-");
  }
  return row;
}

/** The fleet as a text table (one row per board), then each failed board's error. */
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
    "timing",
    "peak MB",
  ];
  const withSim = f.simulation?.available === true;
  if (withSim) head.push("sim acc", "sim agree");
  const body = f.rows.map((r) => fleetRow(r, head.length, withSim));
  const notes = f.rows
    .filter((r) => r.error)
    .map((r) =>
      r.error!.message.startsWith(`${r.device}: `) ? r.error!.message : `${r.device}: ${r.error!.message}`,
    );
  // emulated timings are the emulator's on this host: say so under the table, once per board
  const emulated = f.rows.flatMap((r) =>
    r.report?.latency?.emulated ? [`${r.device}: timings ${r.report.latency.note}`] : [],
  );
  return [...columns([head, ...body]), ...emulated, ...notes].join("\n");
}

function stepsOf(d: { maxSteps?: number; stepKind?: string }): string {
  if (d.maxSteps === undefined) return "no quantization scale";
  const unit =
    d.stepKind === "integer"
      ? "integer steps"
      : d.stepKind === "range"
        ? "steps of its range/255"
        : `${d.stepKind} steps`;
  return `${d.maxSteps.toFixed(2)} ${unit}`;
}

/** The per-layer table of one board: tensor, layer, ops, max steps, share changed; the first divergence. */
export function formatLayers(x: DeviceReport): string[] {
  if (x.firstDivergence === undefined) return [];
  const threshold = x.layerThreshold ?? DEFAULT_LAYER_THRESHOLD;
  const out = [
    `  layers     host vs board per quantized tensor, in quantization steps (diverged: more than ${threshold} step)`,
  ];
  const head = ["#", "tensor", "layer", "ops", "max steps", "changed", ""];
  const rows = x.layers.map((l, i) => [
    String(i + 1),
    l.name,
    l.node,
    l.ops.join("+") || l.op,
    l.maxSteps === undefined ? "-" : l.maxSteps.toFixed(2),
    `${(100 * (l.changed ?? 0)).toFixed(1)}%`,
    l.diverged ? (x.firstDivergence?.tensor === l.name ? "<- first divergence" : "diverged") : "",
  ]);
  out.push(...columns([head, ...rows]).map((line) => `    ${line}`));
  const f = x.firstDivergence;
  out.push(
    f
      ? `  first divergence: layer '${f.node}' (${f.ops.join("+") || f.op}) → '${f.tensor}': ${f.maxSteps.toFixed(2)} ${f.stepKind === "integer" ? "" : `${f.stepKind} `}steps, ${(100 * f.changed).toFixed(1)}% of values differ`
      : `  first divergence: none — every compared tensor and the output are within ${threshold} step of the host`,
  );
  if (x.probe) {
    out.push(
      x.probe.host === 0 && x.probe.board === 0
        ? "  probes     exposing the tensors left the final output unchanged on host and board"
        : `  probes     WARNING: exposing the tensors changed the final output (max |Δ| host ${x.probe.host.toExponential(2)}, board ${x.probe.board.toExponential(2)}): ORT fused the probed model differently, so these layer values may not be the deployed model's`,
    );
  }
  return out;
}

/** Latency, TensorRT and memory lines of one board. */
function formatResources(x: DeviceReport): string[] {
  const out = [
    `  latency    p50 ${x.latencyMs.p50.toFixed(2)} ms  p90 ${x.latencyMs.p90.toFixed(2)} ms  p99 ${x.latencyMs.p99.toFixed(2)} ms per sample` +
      (x.runtime === "tensorrt" ? " (trtexec's median Latency per batch)" : "") +
      (x.latency?.emulated ? ` — EMULATED, ${x.latency.note.replace(/^emulated: /, "")}` : ""),
  ];
  if (x.tensorrt) {
    out.push(
      `  tensorrt   ${x.tensorrt.version ? `TensorRT ${x.tensorrt.version}` : "TensorRT (version not printed)"}, engine ${x.tensorrt.engine} (${x.tensorrt.cached ? "cached" : `built in ${(x.tensorrt.buildMs / 1000).toFixed(1)} s`})` +
        (x.tensorrt.gpuComputeMs
          ? `, GPU compute p50 ${x.tensorrt.gpuComputeMs.p50.toFixed(3)} ms per batch`
          : ""),
    );
  }
  out.push(
    x.peakRssBytes
      ? `  memory     peak ${(x.peakRssBytes / 2 ** 20).toFixed(1)} MiB (${x.runtime === "tensorrt" ? "trtexec RSS, sampled" : "agent RSS"})`
      : "  memory     not measured",
  );
  return out;
}

/** One board's section: accuracy, agreement, simulation, per class, output difference, layers, resources. */
function formatBoard(device: string, x: DeviceReport): string[] {
  const out = [
    "",
    `${device} (${x.board ?? "?"}, ${x.arch ?? "?"}): ${x.samples} samples, batch ${x.batchSize}${x.runtime === "tensorrt" ? ", TensorRT" : ""}`,
    `  accuracy   host ${pct(x.hostAccuracy)}  board ${pct(x.boardAccuracy)}  drift ${(100 * x.drift).toFixed(2)} pt` +
      `${x.maxDrift !== undefined ? ` (max ${(100 * x.maxDrift).toFixed(2)} pt${x.exceeded ? ", EXCEEDED" : ""})` : ""}`,
    `  agreement  ${pct(x.agreement)} of samples have the same top-1 class`,
  ];
  if (x.simulation?.available) {
    out.push(
      `  simulation ${pct(x.simulation.accuracy)}; the board agrees with it on ${pct(x.simulation.agreementWithBoard)} of samples (simulation − board ${(100 * x.simulation.drift).toFixed(2)} pt)`,
    );
  }
  out.push(
    `  per class  ${x.perClass.map((c) => `${c.label}:${c.delta >= 0 ? "+" : ""}${(100 * c.delta).toFixed(1)}`).join(" ")} (board − host, pt)`,
  );
  const d = x.output;
  out.push(
    `  ${d.name}: max |Δ| ${d.maxAbs.toExponential(2)} (${d.refMaxAbs ? ((100 * d.maxAbs) / d.refMaxAbs).toFixed(4) : "0"}% of max |host|), mean ${d.meanAbs.toExponential(2)}, ${stepsOf(d)}`,
  );
  return [...out, ...formatLayers(x), ...formatResources(x)];
}

/** The drift table and, per board, the per-class deltas, output differences and latency. */
export function formatDriftReport(f: FleetReport): string {
  const out = [formatFleet(f)];
  if (f.simulation) {
    out.push(
      f.simulation.available
        ? `simulation (fake-quant, on the host): ${pct(f.simulation.accuracy)}, top-1 agreement with the host ${pct(f.simulation.agreementWithHost)} — ${f.simulation.source}${f.simulation.note ? ` (${f.simulation.note})` : ""}`
        : `simulation: not run — ${f.simulation.reason}`,
    );
  }
  if (f.runtime === "tensorrt")
    out.push("runtime: TensorRT through trtexec on the board (unverified on real Jetson hardware)");
  for (const r of f.rows) if (r.report) out.push(...formatBoard(r.device, r.report));
  return out.join("\n");
}

/** The boards that failed or drifted too far, e.g. "pi failed (serial-missing), jetson drifted 1.20 pt". */
export function formatFailures(f: FleetReport): string {
  return f.rows
    .filter((r) => r.error || r.report?.exceeded)
    .map((r) =>
      r.error
        ? `${r.device} failed (${r.error.code})`
        : `${r.device} drifted ${(100 * r.report!.drift).toFixed(2)} pt`,
    )
    .join(", ");
}
