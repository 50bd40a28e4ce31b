/**
 * The one-page summary of a `qat quantize` run: the budget and the outcome, every stage it ran (metric, drop, time,
 * what changed) with a bar chart of the metric per stage, the per-output fidelity of the exported model, and the
 * per-layer error (SQNR of each quantized layer's output against float). Self-contained like the run report.
 */
import { join } from "node:path";
import type { QuantizeResult, StageRecord } from "../pipeline/quantize/types.js";
import { writeFileAtomic } from "../util/atomic.js";
import { STYLE } from "./style.js";

// the page's helpers load ECharts (most of a second): loaded when a page is drawn, not when qat is imported
type Html = typeof import("./html.js");
type Charts = typeof import("./charts.js");

export const QUANTIZE_REPORT = "report.html";

const fix = (v: number | null | undefined, d = 2): string =>
  v === null || v === undefined ? "–" : Number.isFinite(v) ? v.toFixed(d) : String(v);

function stageChart(r: QuantizeResult, { axis, COLORS, render }: Charts, { esc }: Html): string {
  const measured = r.stages.filter((s): s is StageRecord & { metric: number } => s.metric !== null);
  const lo = Math.max(0, Math.floor(Math.min(...measured.map((s) => s.metric), r.reference - r.maxDrop) - 1));
  const svg = render({
    grid: { left: 70, right: 64, top: 30, bottom: 50 },
    xAxis: {
      type: "category",
      data: measured.map((s) => s.stage),
      ...axis("stage", { nameGap: 30, axisLabel: { interval: 0, fontSize: 10, color: "#444" } }),
    },
    yAxis: {
      type: "value",
      min: lo,
      max: 100,
      ...axis(`${r.metric.name} (${r.metric.unit})`, { nameGap: 44 }),
    },
    series: [
      {
        type: "bar",
        barMaxWidth: 60,
        data: measured.map((s) => ({
          value: Number(s.metric.toFixed(2)),
          itemStyle: {
            color: s.stage === "reference" ? COLORS.float : s.withinBudget ? COLORS.int8 : COLORS.board,
          },
        })),
        label: { show: true, position: "top", fontSize: 10 },
        markLine: {
          symbol: "none",
          data: [{ yAxis: r.reference - r.maxDrop, name: "budget" }],
          label: { formatter: "budget" },
        },
      },
    ],
  });
  return `<figure class="chart" data-chart="quantize-stages"><figcaption class="title">${esc(r.metric.name)} per stage</figcaption>${svg}</figure>`;
}

function outputsTable(r: QuantizeResult, { table }: Html): string {
  const stage = r.stages.find((s) => s.stage === r.exportedFrom);
  const metric = stage?.details.metric as { outputs?: Record<string, Record<string, number>> } | undefined;
  const outs = metric?.outputs ?? {};
  const rows = Object.entries(outs).map(([name, m]) => [
    name,
    fix(m.sqnrDb),
    fix(m.cosine, 5),
    m.top1Agreement === undefined ? "–" : fix(100 * m.top1Agreement),
  ]);
  return rows.length ? table(["output", "SQNR (dB)", "cosine", "top-1 agreement (%)"], rows) : "";
}

/** The page for a finished run. */
export async function renderQuantizeSummary(r: QuantizeResult): Promise<string> {
  const h = await import("./html.js");
  const c = await import("./charts.js");
  const { esc, section, table } = h;
  const verdict = r.withinBudget
    ? `within budget: ${fix(r.final)} ${r.metric.unit} (drop ${fix(r.drop)} pt ≤ ${fix(r.maxDrop)})`
    : `budget not met: best ${fix(r.final)} ${r.metric.unit} (drop ${fix(r.drop)} pt > ${fix(r.maxDrop)}); the best model was kept`;
  const stages = table(
    [
      "stage",
      "status",
      `${r.metric.name} (${r.metric.unit})`,
      "drop (pt)",
      "within budget",
      "seconds",
      "what changed",
    ],
    r.stages.map((s) => [
      s.stage,
      s.status,
      fix(s.metric),
      fix(s.drop),
      s.withinBudget === null ? "–" : s.withinBudget ? "yes" : "no",
      fix(s.seconds, 1),
      s.changed,
    ]),
  );
  const layers = table(
    ["layer", "weight bits", "output SQNR (dB)"],
    r.layers.map((l) => [l.layer, l.weightBits ?? "float", fix(l.sqnrDb)]),
  );
  const warnings = r.warnings.length
    ? `<ul>${r.warnings.map((w) => `<li>${esc(w)}</li>`).join("")}</ul>`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>qat quantize — ${esc(r.model)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>qat quantize</h1>
<p class="meta"><code>${esc(r.model)}</code> → <code>${esc(r.files.model)}</code> · preset ${esc(r.preset)} · ${esc(r.metric.labelled ? "labelled data" : "no labels: fidelity to float")}</p>
<p><strong>${esc(verdict)}</strong>; exported from stage <code>${esc(r.exportedFrom)}</code>.</p>
${warnings}
</header>
<main>
${section("stages", "Stages", stages + stageChart(r, c, h))}
${section("outputs", "Exported model against float, per output", outputsTable(r, h))}
${section("layers", "Per-layer error of the exported model", layers)}
</main>
</body>
</html>
`;
}

/** Render and write `<out>/report.html` atomically; returns its path. */
export async function writeQuantizeSummary(
  r: QuantizeResult,
  out = join(r.out, QUANTIZE_REPORT),
): Promise<string> {
  writeFileAtomic(out, await renderQuantizeSummary(r));
  return out;
}
