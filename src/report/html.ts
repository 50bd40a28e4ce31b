/**
 * The report page: one self-contained HTML file. Charts are inline SVG (drawn when the report is written), styles
 * are inline, there is no script and no reference to anything outside the file.
 */
import { version as echartsVersion } from "echarts";
import { agreementChart, differenceChart, latencyChart, opsChart, perClassChart } from "./board-charts.js";
import {
  accuracyChart,
  type Chart,
  COLORS,
  lossChart,
  pct,
  sensitivityChart,
  stagesChart,
  weightScaleChart,
} from "./charts.js";
import { STYLE } from "./style.js";
import type { BoardResult, ModelInfo, QuantRow, ReportData } from "./types.js";

export const esc = (s: unknown): string =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );

const num = (v: number, digits = 4): string =>
  Number.isFinite(v) ? Number(v.toPrecision(digits)).toString() : "–";
const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;

export function table(head: string[], rows: (string | number)[][], cls = ""): string {
  return (
    `<table${cls ? ` class="${cls}"` : ""}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")}</tbody></table>`
  );
}

function figure(c: Chart | undefined): string {
  if (!c) return "";
  return (
    `<figure class="chart" data-chart="${esc(c.id)}"><figcaption class="title">${esc(c.title)}</figcaption>` +
    `${c.svg}${c.caption ? `<figcaption class="note">${esc(c.caption)}</figcaption>` : ""}</figure>`
  );
}

export const charts = (...cs: (Chart | undefined)[]): string => {
  const inner = cs.map(figure).join("");
  return inner ? `<div class="charts">${inner}</div>` : "";
};

const na = (hint: string | undefined, what = "Not available"): string =>
  hint ? `<p class="na">${esc(what)} (${esc(hint)}).</p>` : "";

export function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${body}</section>`;
}

function overview(d: ReportData): string {
  const cards: [string, string, string][] = [];
  const run = d.qat ?? d.float;
  if (run) cards.push(["model", run.model, `dataset ${run.dataset}`]);
  if (d.float?.summary) cards.push(["float", pct(d.float.summary.test_accuracy), "test accuracy"]);
  if (d.qat?.summary)
    cards.push([
      `QAT (${d.qat.qatPreset ?? "?"})`,
      pct(d.qat.summary.test_accuracy),
      "simulation, test accuracy",
    ]);
  if (d.export)
    cards.push([
      "int8 (ONNX Runtime)",
      pct(d.export.parity.export_accuracy),
      `${d.export.parity.samples} samples, ${kib(d.export.bytes)}`,
    ]);
  for (const b of d.device?.boards ?? [])
    cards.push([
      b.device,
      pct(b.boardAccuracy),
      `drift ${(100 * b.drift).toFixed(2)} pt, p50 ${b.latencyMs.p50.toFixed(2)} ms${b.latency?.emulated ? " (emulated)" : ""}`,
    ]);
  if (!cards.length) return "";
  return `<div class="cards">${cards
    .map(
      ([k, v, s]) =>
        `<div class="card"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div><div class="s">${esc(s)}</div></div>`,
    )
    .join("")}</div>`;
}

function training(d: ReportData): string {
  const points = [...(d.float?.epochs ?? []), ...(d.qat?.epochs ?? [])];
  if (!points.length) return na(d.missing.training);
  const rows = points.map((p) => [
    p.phase === "float" ? "float" : "QAT",
    p.epoch,
    p.step,
    num(p.trainLoss),
    pct(p.trainAccuracy),
    `${pct(p.evalAccuracy)} (${p.evalOn})`,
    pct(p.evalTop5),
    Math.round(p.samplesPerSec),
    p.seconds.toFixed(1),
  ]);
  const runs = [d.float, d.qat].filter((r) => r !== undefined);
  return (
    charts(lossChart(d.float, d.qat), accuracyChart(d.float, d.qat)) +
    table(
      ["phase", "epoch", "step", "train loss", "train acc", "eval acc", "top-5", "samples/s", "seconds"],
      rows,
    ) +
    `<p class="src">From ${runs.map((r) => `<code>${esc(r.dir)}</code>`).join(" and ")} (metrics.jsonl).` +
    `${d.float ? "" : " No float run found (the QAT run's --init)."}</p>`
  );
}

function scaleText(r: QuantRow): string {
  const s = r.scales.map(Math.abs);
  return s.length === 1 ? num(s[0]!) : `${num(Math.min(...s))} … ${num(Math.max(...s))} (${s.length} ch)`;
}

function quantization(d: ReportData): string {
  if (!d.quant)
    return na(d.missing.quant) + (d.sensitivity ? charts(sensitivityChart(d.sensitivity.report)) : "");
  const rows = d.quant.rows.map((r) => {
    const zps = [...new Set(r.zeroPoints)];
    return [
      r.layer,
      r.kind,
      r.tensor,
      `${r.dtype} (${r.bits}-bit, ${r.qmin}…${r.qmax})`,
      r.axis < 0 ? "tensor" : `axis ${r.axis}`,
      scaleText(r),
      zps.length === 1 ? num(zps[0]!) : `${zps.length} values`,
      `${num(r.rangeMin)} … ${num(r.rangeMax)}`,
      r.sensitivity ? `${(100 * r.sensitivity.delta).toFixed(2)} pt (${pct(r.sensitivity.accuracy)})` : "–",
    ];
  });
  return (
    table(
      ["layer", "kind", "tensor", "type", "per", "scale", "zero point", "float range", "sensitivity"],
      rows,
      "quant",
    ) +
    `<p class="src">qconfig <b>${esc(d.quant.preset)}</b>; scales and zero points from <code>${esc(d.quant.checkpoint)}</code>. ` +
    "Float range: what the integers cover, (qmin − zp)·scale … (qmax − zp)·scale, widest over channels. " +
    `Sensitivity: accuracy change when only that layer is quantized${d.sensitivity ? ` (<code>${esc(d.sensitivity.file)}</code>)` : ""}.</p>` +
    na(d.missing.sensitivity, "Sensitivity per layer: not available") +
    charts(weightScaleChart(d.quant.rows), d.sensitivity && sensitivityChart(d.sensitivity.report))
  );
}

function parity(d: ReportData): string {
  const e = d.export;
  if (!e) return na(d.missing.export);
  const p = e.parity;
  const stages: Parameters<typeof stagesChart>[0] = [];
  const f = d.float?.summary;
  const q = d.qat?.summary;
  if (f) stages.push({ name: "float", accuracy: f.test_accuracy, samples: f.count, color: COLORS.float });
  if (q)
    stages.push({ name: "QAT simulation", accuracy: q.test_accuracy, samples: q.count, color: COLORS.qat });
  stages.push({
    name: "int8, ORT host",
    accuracy: p.export_accuracy,
    samples: p.samples,
    color: COLORS.int8,
  });
  for (const b of d.device?.boards ?? [])
    stages.push({
      name: `board ${b.device}`,
      accuracy: b.boardAccuracy,
      samples: b.samples,
      color: COLORS.board,
    });
  const outputs = p.outputs.map((o) => [
    o.name,
    num(o.maxAbs),
    num(o.meanAbs),
    `${o.step} (${num(o.stepSize)})`,
    num(o.maxSteps, 3),
    pct(o.withinOneStep),
  ]);
  return (
    table(
      [
        "int8 model",
        "format",
        "target",
        "opset",
        "samples",
        "simulation",
        "int8 (ORT)",
        "top-1 agreement",
        "parity",
      ],
      [
        [
          `${e.file} (${kib(e.bytes)})`,
          e.format,
          e.target,
          e.opset,
          p.samples,
          pct(e.simulation.accuracy),
          pct(p.export_accuracy),
          pct(p.agreement),
          p.passed ? "passed" : "FAILED",
        ],
      ],
    ) +
    table(["output", "max |Δ|", "mean |Δ|", "step", "max steps", "within one step"], outputs) +
    `<p class="src">The int8 model in ONNX Runtime against the fake-quant simulation on ${p.samples} ${esc(e.simulation.dataset)} samples ` +
    `(host session config ${esc(JSON.stringify(p.host_config))}), from the model's qat.export metadata.</p>` +
    (e.warnings.length
      ? `<ul class="warn">${e.warnings.map((w) => `<li>${esc(w)}</li>`).join("")}</ul>`
      : "") +
    charts(stagesChart(stages))
  );
}

function boardBlock(b: BoardResult, classNames?: string[] | null): string {
  const mib = (x: number) => (Number.isFinite(x) ? `${(x / 2 ** 20).toFixed(1)} MiB` : "–");
  return (
    `<h3>${esc(b.device)} <span class="sub">${esc([b.board, b.arch].filter(Boolean).join(", "))}</span></h3>` +
    table(
      ["samples", "host acc", "board acc", "drift", "agreement", "max |Δ| output", "batch", "peak memory"],
      [
        [
          b.samples,
          pct(b.hostAccuracy),
          pct(b.boardAccuracy),
          `${(100 * b.drift).toFixed(2)} pt${b.maxDrift !== undefined ? ` (max ${(100 * b.maxDrift).toFixed(2)})` : ""}${b.exceeded ? " EXCEEDED" : ""}`,
          pct(b.agreement),
          num(b.output.maxAbs),
          b.batchSize,
          mib(b.peakRssBytes),
        ],
      ],
    ) +
    charts(perClassChart(b, classNames), agreementChart(b), differenceChart(b))
  );
}

function board(d: ReportData): string {
  const dev = d.device;
  if (!dev) return na(d.missing.device);
  const names = (d.qat ?? d.float)?.summary?.class_names;
  const failed = dev.failed
    .map((f) => `<li>${esc(f.device)}: ${esc(f.code)} — ${esc(f.message)}</li>`)
    .join("");
  return (
    `<p class="src">From <code>${esc(dev.file)}</code>: ${esc(dev.model ?? "the model")} on ${dev.samples} samples` +
    `${dev.dataset ? ` of ${esc(dev.dataset)}` : ""}, host accuracy ${pct(dev.hostAccuracy)}.</p>` +
    dev.boards.map((b) => boardBlock(b, names)).join("") +
    (failed ? `<ul class="warn">${failed}</ul>` : "")
  );
}

function latency(d: ReportData): string {
  const boards = d.device?.boards ?? [];
  if (!boards.length) return na(d.missing.device);
  const row = (b: BoardResult, what: string, s: BoardResult["latencyMs"]) => [
    b.device,
    b.latency?.emulated ? `${what}, EMULATED` : what,
    ...[s.p50, s.p90, s.p99, s.mean, s.max].map((x) => x.toFixed(3)),
  ];
  return (
    charts(...boards.map(latencyChart)) +
    table(
      ["device", "latency (ms)", "p50", "p90", "p99", "mean", "max"],
      boards.flatMap((b) => [
        row(b, "per sample", b.latencyMs),
        ...(b.batchLatencyMs ? [row(b, `per batch of ${b.batchSize}`, b.batchLatencyMs)] : []),
      ]),
    ) +
    boards
      .filter((b) => b.latency?.emulated)
      .map((b) => `<p class="note">${esc(b.device)}: timings ${esc(b.latency?.note ?? "emulated")}.</p>`)
      .join("")
  );
}

function modelTable(m: ModelInfo): string[] {
  const s = m.summary;
  const io = (v: typeof s.inputs) =>
    v.map((x) => `${x.name}: ${x.dtype}[${(x.shape ?? []).map((d) => d ?? "?").join(", ")}]`).join("; ");
  return [
    m.label,
    `${m.file} (${kib(m.bytes)})`,
    Object.entries(s.opsets)
      .map(([k, v]) => `${k || "ai.onnx"} ${v}`)
      .join(", "),
    io(s.inputs),
    io(s.outputs),
    String(s.nodes),
    s.parameters.byDtype.map((g) => `${g.elements.toLocaleString("en")} ${g.dtype}`).join(", ") || "0",
    s.constants.byDtype.map((g) => `${g.elements.toLocaleString("en")} ${g.dtype}`).join(", ") || "0",
  ];
}

function model(d: ReportData): string {
  const models = [d.floatModel, d.export].filter((m) => m !== undefined);
  if (!models.length) return na(d.missing.model);
  return (
    table(
      ["model", "file", "opsets", "inputs", "outputs", "nodes", "float constants", "other constants"],
      models.map(modelTable),
    ) +
    (d.export
      ? `<p class="src">Constants by element type: in the int8 model the weights are int8 and the biases int32; the ` +
        "float constants left are mostly the scales.</p>"
      : "") +
    charts(opsChart(models))
  );
}

/** A report page's opening up to </head>: its title and the inline styles (the report's, plus `style`). */
export function pageHead(title: string, style = ""): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}${style}</style>
</head>`;
}

/** The whole page. */
export function renderHtml(d: ReportData): string {
  const title = `qat report — ${d.root}`;
  const sections: [string, string, string][] = [
    ["training", "Training: loss and accuracy per epoch", training(d)],
    ["quantization", "Quantization per layer", quantization(d)],
    ["parity", "Export parity", parity(d)],
    ["board", "Board drift", board(d)],
    ["latency", "Latency on the board", latency(d)],
    ["model", "Model summary", model(d)],
  ];
  return `${pageHead(title)}
<body>
<header>
<h1>qat report</h1>
<p class="meta"><code>${esc(d.root)}</code> · ${d.layout === "pipeline" ? "pipeline run (float, QAT, int8 export, board)" : "run folder"} · written ${esc(d.generated)}</p>
<nav>${sections.map(([id, t]) => `<a href="#${id}">${esc(t)}</a>`).join("")}</nav>
${overview(d)}
</header>
<main>
${sections.map(([id, t, body]) => section(id, t, body)).join("\n")}
</main>
<footer>Charts drawn with Apache ECharts ${esc(echartsVersion)} as SVG when the report was written; this file needs nothing else to be viewed.</footer>
</body>
</html>
`;
}
