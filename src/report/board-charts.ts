/** Charts of the board section (drift, agreement, output differences, latency) and of the model summary. */
import { axis, type Chart, COLORS, pct, render } from "./charts.js";
import type { BoardResult, ModelInfo } from "./types.js";

const slug = (s: string): string => s.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "") || "board";

/** Host and board accuracy per class, on the samples the board ran. */
export function perClassChart(b: BoardResult, classNames?: string[] | null): Chart {
  const v = (x: number) => Number((100 * x).toFixed(2));
  const all = b.perClass.flatMap((c) => [c.host, c.board]).filter(Number.isFinite);
  const lo = Math.max(0, Math.floor(100 * Math.min(...all) - 2));
  const name = (l: number) => classNames?.[l] ?? String(l);
  const changed = b.perClass.filter((c) => c.delta !== 0).length;
  return {
    id: `per-class-${slug(b.device)}`,
    title: `Per-class accuracy: host vs ${b.device}`,
    caption:
      `${b.samples} samples (count per class under each label). ` +
      (changed
        ? `${changed} class(es) differ; labels over the board bars give board − host in points.`
        : "Every class has the same accuracy on the board as on the host."),
    svg: render(
      {
        legend: { top: 4 },
        grid: { left: 70, right: 24, top: 40, bottom: 62 },
        xAxis: {
          type: "category",
          data: b.perClass.map((c) => `${name(c.label)}\n(${c.count})`),
          ...axis("class (samples)", {
            nameGap: 44,
            axisLabel: { fontSize: 10, interval: 0, color: "#444" },
          }),
        },
        yAxis: { type: "value", min: lo, max: 100, ...axis("accuracy (%)", { nameGap: 44 }) },
        series: [
          {
            type: "bar",
            name: "host (ONNX Runtime)",
            color: COLORS.host,
            data: b.perClass.map((c) => v(c.host)),
          },
          {
            type: "bar",
            name: `board (${b.board ?? b.device})`,
            color: COLORS.board,
            data: b.perClass.map((c) => v(c.board)),
            label: {
              show: changed > 0,
              position: "top",
              fontSize: 9,
              formatter: (p: unknown) => {
                const c = b.perClass[(p as { dataIndex: number }).dataIndex]!;
                return c.delta === 0 ? "" : `${c.delta > 0 ? "+" : ""}${(100 * c.delta).toFixed(1)}`;
              },
            },
          },
        ],
      },
      760,
      320,
    ),
  };
}

/** Samples whose top-1 class is the same on the board and the host. */
export function agreementChart(b: BoardResult): Chart {
  const same = Math.round(b.agreement * b.samples);
  const differ = b.samples - same;
  return {
    id: `agreement-${slug(b.device)}`,
    title: `Top-1 agreement: ${b.device}`,
    caption: `${same} of ${b.samples} samples have the same predicted class on the board and on the host; ${differ} differ.`,
    svg: render(
      {
        legend: { bottom: 4 },
        title: {
          text: pct(b.agreement),
          subtext: "agree",
          left: "center",
          top: "40%",
          textStyle: { fontSize: 22, color: "#222" },
          subtextStyle: { fontSize: 12, color: "#555" },
        },
        series: [
          {
            type: "pie",
            radius: ["48%", "72%"],
            center: ["50%", "50%"],
            label: { show: true, formatter: "{b}: {c}", fontSize: 11 },
            data: [
              { name: "same top-1 class", value: same, itemStyle: { color: COLORS.int8 } },
              { name: "different class", value: differ, itemStyle: { color: COLORS.board } },
            ],
          },
        ],
      },
      360,
      320,
    ),
  };
}

/**
 * |host − board|: per probed layer in quantization steps when layers were compared (where drift starts matters
 * most), else the output's histogram when the report has one, else its statistics.
 */
export function differenceChart(b: BoardResult): Chart {
  const id = `output-diff-${slug(b.device)}`;
  const h = b.output.histogram;
  if (h && b.layers.length === 0) {
    const labels = h.counts.map((_, i) => `${h.edges[i]!.toPrecision(2)}–${h.edges[i + 1]!.toPrecision(2)}`);
    return {
      id,
      title: `Output differences |host − board|: ${b.device}`,
      caption: `Histogram of |host − board| over every value of '${b.output.name}' (${b.samples} samples).`,
      svg: render({
        xAxis: {
          type: "category",
          data: labels,
          ...axis("|host − board|", { axisLabel: { rotate: 30, fontSize: 9 } }),
        },
        yAxis: { type: "value", ...axis("values", { nameGap: 50 }) },
        series: [{ type: "bar", color: COLORS.board, data: h.counts, barCategoryGap: "5%" }],
      }),
    };
  }
  const diffs = [b.output, ...b.layers];
  const zero = diffs.every((d) => d.maxAbs === 0);
  const fmt = (x: number) => (x === 0 ? 0 : Number(x.toPrecision(3)));
  // tensors of different layers have different units: compare them in quantization steps when every one has a step
  const inSteps = diffs.length > 1 && diffs.every((d) => d.maxSteps !== undefined);
  const series = inSteps
    ? [
        {
          name: "max |Δ| (quantization steps)",
          color: COLORS.board,
          data: diffs.map((d) => fmt(d.maxSteps!)),
        },
      ]
    : [
        { name: "max |Δ|", color: COLORS.board, data: diffs.map((d) => fmt(d.maxAbs)) },
        { name: "mean |Δ|", color: COLORS.qat, data: diffs.map((d) => fmt(d.meanAbs)) },
      ];
  const notes = diffs
    .map((d) => {
      const parts = [
        d.maxSteps !== undefined ? `${d.maxSteps.toFixed(2)} quantization steps at most` : "",
        d.changed !== undefined ? `${pct(d.changed)} of values differ` : "",
      ].filter(Boolean);
      return parts.length ? ` '${d.name}': ${parts.join(", ")}.` : "";
    })
    .join("");
  return {
    id,
    title: `Output differences |host − board|: ${b.device}`,
    caption:
      "The device report carries the largest and the mean |host − board| per compared value, not each value, so " +
      "these are drawn instead of a histogram" +
      (zero
        ? `; every value of ${diffs.map((d) => `'${d.name}'`).join(", ")} was identical on the board.`
        : ".") +
      notes,
    svg: render({
      legend: { top: 4 },
      graphic: zero
        ? [
            {
              type: "text",
              left: "center",
              top: "middle",
              style: { text: "identical: max |Δ| = 0", fontSize: 16, fill: "#2a7a2a" },
            },
          ]
        : [],
      grid: { left: 70, right: 24, top: 40, bottom: diffs.length > 3 ? 90 : 62 },
      xAxis: {
        type: "category",
        data: diffs.map((d) => (inSteps ? d.name : `${d.name}\n(max |host| ${d.refMaxAbs.toPrecision(3)})`)),
        ...axis("compared value", {
          nameGap: diffs.length > 3 ? 70 : 44,
          axisLabel: { interval: 0, rotate: diffs.length > 3 ? 30 : 0, fontSize: 10, color: "#444" },
        }),
      },
      yAxis: { type: "value", ...axis(inSteps ? "quantization steps" : "|host − board|", { nameGap: 50 }) },
      series: series.map((x) => ({
        type: "bar" as const,
        ...x,
        barMaxWidth: 50,
        label: { show: diffs.length <= 8, position: "top" as const, fontSize: 10 },
      })),
    }),
  };
}

const markers = (at: (v: number) => number | string, b: BoardResult) =>
  (["p50", "p90", "p99"] as const).map((k) => ({
    xAxis: at(b.latencyMs[k]),
    name: k,
    label: { formatter: `${k} ${b.latencyMs[k].toFixed(2)} ms`, fontSize: 10 },
  }));

/** Per-sample latency on the board: a histogram of every run when the report has them, else its quantile bins. */
export function latencyChart(b: BoardResult): Chart {
  const id = `latency-${slug(b.device)}`;
  const emulated = b.latency?.emulated === true;
  const title = `Latency per sample on ${b.device}${emulated ? " (EMULATED, not the board's speed)" : ""}`;
  const s = b.latencySamplesMs?.filter(Number.isFinite);
  const common =
    `Batch time / batch size (batch ${b.batchSize}); p50 ${b.latencyMs.p50.toFixed(2)} ms, p90 ${b.latencyMs.p90.toFixed(2)} ms, p99 ${b.latencyMs.p99.toFixed(2)} ms.` +
    (emulated ? ` Timings ${b.latency?.note}.` : "");
  if (s?.length) {
    const lo = Math.min(...s);
    const hi = Math.max(...s);
    const bins = Math.max(1, Math.min(30, Math.ceil(Math.sqrt(s.length))));
    const w = (hi - lo) / bins || 1;
    const counts = new Array<number>(bins).fill(0);
    for (const x of s) counts[Math.min(bins - 1, Math.floor((x - lo) / w))]!++;
    const labels = counts.map((_, i) => (lo + (i + 0.5) * w).toFixed(2));
    const binOf = (v: number) => Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / w)));
    return {
      id,
      title,
      caption: `${s.length} runs. ${common}`,
      svg: render({
        xAxis: { type: "category", data: labels, ...axis("ms per sample (bin centre)") },
        yAxis: { type: "value", minInterval: 1, ...axis("runs", { nameGap: 44 }) },
        series: [
          {
            type: "bar",
            color: COLORS.float,
            data: counts,
            barCategoryGap: "8%",
            markLine: { symbol: "none", lineStyle: { color: COLORS.board }, data: markers(binOf, b) },
          },
        ],
      }),
    };
  }
  const q = b.latencyMs;
  const runs = Math.ceil(b.samples / Math.max(1, b.batchSize));
  const bins = [
    { name: "up to p50", range: `≤ ${q.p50.toFixed(2)}`, to: q.p50, share: 0.5 },
    { name: "p50 to p90", range: `${q.p50.toFixed(2)}–${q.p90.toFixed(2)}`, to: q.p90, share: 0.4 },
    { name: "p90 to p99", range: `${q.p90.toFixed(2)}–${q.p99.toFixed(2)}`, to: q.p99, share: 0.09 },
    { name: "p99 to max", range: `${q.p99.toFixed(2)}–${q.max.toFixed(2)}`, to: q.max, share: 0.01 },
  ].reduce<{ name: string; range: string; to: number; share: number }[]>((kept, x) => {
    // two quantiles that coincide leave an empty range: its share belongs to the range before
    const last = kept.at(-1);
    if (last && !(x.to > last.to)) last.share += x.share;
    else kept.push({ ...x });
    return kept;
  }, []);
  return {
    id,
    title,
    caption:
      `The device report carries the quantiles of the ${runs} runs (p50, p90, p99, max), not each run, so the bins ` +
      `are the ranges between them and each bar the share of runs it holds (nearest rank; a range that is empty ` +
      `because two quantiles coincide is merged into the one before). ${common}`,
    svg: render({
      grid: { left: 70, right: 24, top: 30, bottom: 70 },
      xAxis: {
        type: "category",
        data: bins.map((x) => `${x.name}\n${x.range} ms`),
        ...axis("ms per sample (ranges between the quantiles)", {
          nameGap: 50,
          axisLabel: { interval: 0, fontSize: 10, color: "#444" },
        }),
      },
      yAxis: { type: "value", max: 100, ...axis("share of runs (%)", { nameGap: 44 }) },
      series: [
        {
          type: "bar",
          color: COLORS.float,
          barCategoryGap: "4%",
          data: bins.map((x) => Number((100 * x.share).toFixed(0))),
          label: { show: true, position: "top", fontSize: 10, formatter: "{c}%" },
        },
      ],
    }),
  };
}

/** Op counts of the float and the int8 model side by side. */
export function opsChart(models: ModelInfo[]): Chart | undefined {
  if (!models.length) return undefined;
  const ops = [...new Set(models.flatMap((m) => Object.keys(m.summary.ops)))];
  const total = (op: string) => models.reduce((a, m) => a + (m.summary.ops[op] ?? 0), 0);
  ops.sort((a, b) => total(a) - total(b));
  const palette = [COLORS.float, COLORS.int8, COLORS.qat];
  return {
    id: "ops",
    title: "Operators per model",
    caption: models.map((m) => `${m.label}: ${m.summary.nodes} nodes`).join("; "),
    svg: render(
      {
        legend: { top: 4 },
        grid: { left: 140, right: 40, top: 40, bottom: 50 },
        yAxis: { type: "category", data: ops, axisLabel: { fontSize: 11, color: "#444" } },
        xAxis: { type: "value", minInterval: 1, ...axis("nodes") },
        series: models.map((m, i) => ({
          type: "bar" as const,
          name: m.label,
          color: palette[i % palette.length],
          data: ops.map((op) => m.summary.ops[op] ?? 0),
          label: {
            show: true,
            position: "right" as const,
            fontSize: 10,
            formatter: (p: unknown) => {
              const v = (p as { value: number }).value;
              return v ? String(v) : "";
            },
          },
        })),
      },
      600,
      Math.max(260, 90 + ops.length * models.length * 14),
    ),
  };
}
