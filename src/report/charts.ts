/**
 * Charts of the report, drawn by Apache ECharts in its server-side mode: no DOM, no browser, the result is an SVG
 * string put into the page as is (no script runs when the report is viewed). Each builder takes real data from the
 * run and returns a Chart; there is no chart without data (sections without data are not drawn).
 */

import type { EChartsOption } from "echarts";
import * as echarts from "echarts";
import type { SensitivityReport } from "../quant/sensitivity.js";
import { measureText } from "./text-metrics.js";
import type { QuantRow, RunInfo } from "./types.js";

// lay text out with the widths of the font the charts name (server-side ECharts has no canvas to measure with)
echarts.setPlatformAPI({ measureText });

export interface Chart {
  /** Stable id: the page's figure carries it (data-chart), the browser test finds it. */
  id: string;
  title: string;
  svg: string;
  /** What the chart shows and where the numbers come from, under it. */
  caption?: string;
}

export const COLORS = {
  float: "#4c78a8",
  qat: "#f58518",
  int8: "#54a24b",
  board: "#e45756",
  host: "#72b7b2",
  muted: "#9d9da3",
};

/** Wide fonts, so that text laid out with the widths of text-metrics.ts fits wherever the report is opened. */
const FONT = "'DejaVu Sans', Verdana, 'Bitstream Vera Sans', sans-serif";

export const pct = (v: number, digits = 2): string => `${(100 * v).toFixed(digits)}%`;

/** Axis defaults: named, readable labels, light grid. */
export function axis(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    nameLocation: "middle",
    nameGap: 32,
    nameTextStyle: { fontSize: 12, color: "#333" },
    axisLabel: { fontSize: 11, color: "#444" },
    splitLine: { lineStyle: { color: "#e6e6e6" } },
    ...extra,
  };
}

/** Render an option to an SVG string (animation off, fixed size). */
export function render(option: EChartsOption, width = 580, height = 320): string {
  const chart = echarts.init(null, null, { renderer: "svg", ssr: true, width, height });
  try {
    chart.setOption({
      animation: false,
      textStyle: { fontFamily: FONT },
      grid: { left: 70, right: 24, top: 40, bottom: 56, containLabel: false },
      ...option,
    });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

/** The float then the QAT epochs on one axis: training runs in that order. */
function timeline(float?: RunInfo, qat?: RunInfo) {
  const points = [...(float?.epochs ?? []), ...(qat?.epochs ?? [])];
  const labels = points.map((p) => `${p.phase === "float" ? "float" : "QAT"} ${p.epoch}`);
  const only = (phase: "float" | "qat", f: (p: (typeof points)[number]) => number) =>
    points.map((p) => (p.phase === phase ? f(p) : null));
  return { points, labels, only };
}

const lineSeries = (name: string, color: string, data: (number | null)[], dashed = false) => ({
  type: "line" as const,
  name,
  data,
  color,
  symbol: "circle",
  symbolSize: 9,
  connectNulls: false,
  lineStyle: { width: 2, type: dashed ? ("dashed" as const) : ("solid" as const) },
  label: {
    show: data.filter((v) => v !== null).length <= 12,
    position: "top" as const,
    fontSize: 10,
  },
});

export function lossChart(float?: RunInfo, qat?: RunInfo): Chart | undefined {
  const t = timeline(float, qat);
  if (!t.points.length) return undefined;
  const fmt = (v: number) => Number(v.toPrecision(3));
  return {
    id: "loss",
    title: "Training loss per epoch",
    caption:
      "Mean cross-entropy over each epoch's training batches (metrics.jsonl), float training then QAT.",
    svg: render({
      legend: { top: 4 },
      xAxis: { type: "category", data: t.labels, ...axis("epoch (phase and number)") },
      yAxis: { type: "value", ...axis("training loss", { nameGap: 50 }) },
      series: [
        lineSeries(
          "float",
          COLORS.float,
          t.only("float", (p) => fmt(p.trainLoss)),
        ),
        lineSeries(
          "QAT",
          COLORS.qat,
          t.only("qat", (p) => fmt(p.trainLoss)),
        ),
      ],
    }),
  };
}

export function accuracyChart(float?: RunInfo, qat?: RunInfo): Chart | undefined {
  const t = timeline(float, qat);
  if (!t.points.length) return undefined;
  const v = (x: number) => Number((100 * x).toFixed(2));
  const on = t.points[0]!.evalOn;
  return {
    id: "accuracy",
    title: "Accuracy per epoch",
    caption: `Training accuracy (during the epoch) and ${on} accuracy after it; the QAT ${on} accuracy is the fake-quant simulation's.`,
    svg: render({
      legend: { top: 4 },
      xAxis: { type: "category", data: t.labels, ...axis("epoch (phase and number)") },
      yAxis: { type: "value", scale: true, ...axis("accuracy (%)", { nameGap: 44 }) },
      series: [
        lineSeries(
          "float train",
          COLORS.float,
          t.only("float", (p) => v(p.trainAccuracy)),
          true,
        ),
        lineSeries(
          `float ${on}`,
          COLORS.float,
          t.only("float", (p) => v(p.evalAccuracy)),
        ),
        lineSeries(
          "QAT train",
          COLORS.qat,
          t.only("qat", (p) => v(p.trainAccuracy)),
          true,
        ),
        lineSeries(
          `QAT ${on}`,
          COLORS.qat,
          t.only("qat", (p) => v(p.evalAccuracy)),
        ),
      ],
    }),
  };
}

/** Learned scale per output channel of every quantized weight (per tensor: one point). */
export function weightScaleChart(rows: QuantRow[]): Chart | undefined {
  const weights = rows.filter((r) => r.kind === "weight");
  if (!weights.length) return undefined;
  const channels = Math.max(...weights.map((r) => r.scales.length));
  const palette = [COLORS.float, COLORS.qat, COLORS.int8, COLORS.board, COLORS.host, "#b279a2", "#ff9da6"];
  return {
    id: "weight-scales",
    title: "Learned weight scales per output channel",
    caption:
      "One line per quantized weight (QAT checkpoint initializers); a weight quantized per tensor has one point. " +
      "Log scale: the step between neighbouring int levels.",
    svg: render({
      legend: { top: 4, type: "scroll" },
      xAxis: {
        type: "category",
        data: Array.from({ length: channels }, (_, i) => String(i)),
        ...axis("output channel"),
      },
      yAxis: {
        type: "log",
        ...axis("scale (float per int step)", {
          nameGap: 56,
          axisLabel: { formatter: (x: number) => x.toExponential(0) },
        }),
      },
      series: weights.map((r, i) => ({
        type: "line" as const,
        name: `${r.layer} (${r.bits}-bit)`,
        data: r.scales.map((s) => Math.abs(s)),
        color: palette[i % palette.length],
        symbol: "circle",
        symbolSize: 6,
      })),
    }),
  };
}

/** Accuracy with one layer quantized at a time (post-training), against float and the proposal's target. */
export function sensitivityChart(r: SensitivityReport): Chart | undefined {
  if (!r.layers.length) return undefined;
  const v = (x: number) => Number((100 * x).toFixed(2));
  const all = [...r.layers.map((l) => l.accuracy), r.float, r.quantized, r.target];
  const lo = Math.floor(100 * Math.min(...all) - 0.5);
  const hi = Math.ceil(100 * Math.max(...all) + 0.2);
  return {
    id: "sensitivity",
    title: "Per-layer sensitivity (post-training)",
    caption:
      `Test accuracy with only that layer's weight and input quantized (${r.preset}), the rest float; ` +
      `lines: float ${pct(r.float)}, all layers quantized ${pct(r.quantized)}, target ${pct(r.target)}.`,
    svg: render({
      xAxis: {
        type: "category",
        data: r.layers.map((l) => `${l.layer} (${l.weightBits}-bit)`),
        ...axis("layer"),
      },
      yAxis: { type: "value", min: lo, max: hi, ...axis("accuracy (%)", { nameGap: 44 }) },
      series: [
        {
          type: "bar",
          name: "one layer quantized",
          data: r.layers.map((l) => v(l.accuracy)),
          color: COLORS.qat,
          barMaxWidth: 60,
          label: {
            show: true,
            position: "top",
            fontSize: 10,
            formatter: (p: unknown) => {
              const l = r.layers[(p as { dataIndex: number }).dataIndex]!;
              return `${(100 * l.delta >= 0 ? "+" : "") + (100 * l.delta).toFixed(2)} pt`;
            },
          },
          markLine: {
            symbol: "none",
            label: { position: "insideEndTop", fontSize: 10 },
            data: [
              {
                yAxis: v(r.float),
                name: "float",
                lineStyle: { color: COLORS.float },
                label: { formatter: "float" },
              },
              {
                yAxis: v(r.quantized),
                name: "all layers",
                lineStyle: { color: COLORS.int8, type: "dashed" },
                label: { formatter: "all layers", position: "insideStartTop" },
              },
              {
                yAxis: v(r.target),
                name: "target",
                lineStyle: { color: COLORS.board, type: "dotted" },
                label: { formatter: "target" },
              },
            ],
          },
        },
      ],
    }),
  };
}

/** Accuracy at each stage: float, QAT simulation, int8 in ONNX Runtime on the host, each board. */
export function stagesChart(
  stages: { name: string; accuracy: number; samples?: number; color: string }[],
): Chart | undefined {
  if (stages.length < 2) return undefined;
  const v = (x: number) => Number((100 * x).toFixed(2));
  const lo = Math.floor(Math.min(...stages.map((s) => 100 * s.accuracy)) - 1);
  return {
    id: "stages",
    title: "Accuracy from float to the board",
    caption: "Each bar names its evaluation set size; the board evaluates the first samples of the test set.",
    svg: render({
      grid: { left: 70, right: 24, top: 30, bottom: 70 },
      xAxis: {
        type: "category",
        data: stages.map((s) => (s.samples === undefined ? s.name : `${s.name}\n(${s.samples} samples)`)),
        ...axis("stage", { nameGap: 50, axisLabel: { fontSize: 10, interval: 0, color: "#444" } }),
      },
      yAxis: { type: "value", min: Math.max(0, lo), max: 100, ...axis("accuracy (%)", { nameGap: 44 }) },
      series: [
        {
          type: "bar",
          barMaxWidth: 60,
          data: stages.map((s) => ({ value: v(s.accuracy), itemStyle: { color: s.color } })),
          label: { show: true, position: "top", fontSize: 10, formatter: "{c}%" },
        },
      ],
    }),
  };
}
