/**
 * `qat report`: one self-contained HTML page of a run — training curves, the per-layer quantization table, export
 * parity, board drift and latency, the model summary — with charts drawn as inline SVG by Apache ECharts.
 */
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { type GatherOptions, gatherReport, REPORT_FILES } from "./report.js";
import type { ReportData } from "./types.js";

export { readDeviceReport } from "./device-report.js";
export { type GatherOptions, gatherReport, REPORT_FILES } from "./report.js";
export * from "./types.js";

export interface ReportOptions extends GatherOptions {
  /** The HTML file (default `<run>/report.html`). */
  out?: string;
}

export interface ReportResult {
  out: string;
  bytes: number;
  /** Ids of the charts on the page. */
  charts: string[];
  /** Sections without data, and what to run to fill them. */
  missing: ReportData["missing"];
  data: ReportData;
}

/**
 * The page for gathered data. The chart library is loaded on first use (it takes most of a second to load, which
 * every other command of the CLI would pay otherwise).
 */
export async function renderReport(data: ReportData): Promise<string> {
  const { renderHtml } = await import("./html.js");
  return renderHtml(data);
}

/** Gather the run's data, render the page and write it atomically. */
export async function writeReport(run: string, opts: ReportOptions = {}): Promise<ReportResult> {
  const data = gatherReport(run, opts);
  const html = await renderReport(data);
  const out = opts.out ?? join(run, REPORT_FILES.html);
  mkdirSync(dirname(out), { recursive: true });
  writeFileAtomic(out, html);
  const charts = [...html.matchAll(/<figure class="chart" data-chart="([^"]+)"/g)].map((m) => m[1]!);
  return { out, bytes: Buffer.byteLength(html), charts, missing: data.missing, data };
}
