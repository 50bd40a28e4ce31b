/**
 * The detection validation report: one self-contained HTML page (inline SVG, inline styles, no script) with host vs
 * board mAP, per-class AP deltas, box agreement and latency, the precision–recall curves per class and sample
 * images with the host's and each board's detections drawn side by side.
 */
import { readFileSync } from "node:fs";
import type { DetectValidationReport, Stat } from "../detect/drift-report.js";
import { writeFileAtomic } from "../util/atomic.js";
import { prCurveCharts, sampleDrawings } from "./detect-charts.js";
import { charts, esc, pageHead, section, table } from "./html.js";
import { ReportError } from "./types.js";

const f3 = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(3) : "–");
const signed = (v: number | undefined): string =>
  v !== undefined && Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${(100 * v).toFixed(2)} pt` : "–";
const ms = (s: Stat | undefined): string =>
  s && Number.isFinite(s.p50) ? `${s.p50.toFixed(2)} / ${s.mean.toFixed(2)}` : "–";

const DETECT_STYLE = `
.detect-row { display: flex; flex-wrap: wrap; gap: 12px; }
.detect-panel { margin: 0; }
.detect-panel figcaption { font-size: 12px; color: #444; }
.detect-sample { margin-bottom: 16px; }
`;

function summary(r: DetectValidationReport): string {
  const rows: (string | number)[][] = [
    [
      "host",
      "",
      f3(r.host.metrics.map),
      f3(r.host.metrics.map50),
      "",
      "",
      ms(r.host.latencyMs.inference),
      ms(r.host.latencyMs.post),
      ms(r.host.latencyMs.total),
    ],
  ];
  for (const b of r.rows) {
    if (b.error) {
      rows.push([b.device, `failed: ${b.error.message}`, "", "", "", "", "", "", ""]);
      continue;
    }
    const a = b.agreement!;
    rows.push([
      b.device,
      `${b.board ?? ""} ${b.arch ?? ""}${b.timing?.emulated ? " (EMULATED)" : ""}`.trim(),
      f3(b.metrics?.map),
      f3(b.metrics?.map50),
      `${signed(b.delta?.map)} / ${signed(b.delta?.map50)}`,
      `${(100 * a.share).toFixed(1)}% (${a.matched}/${a.hostDetections})`,
      ms(b.latencyMs?.inference),
      ms(b.latencyMs?.post),
      ms(b.latencyMs?.total),
    ]);
  }
  return (
    table(
      [
        "side",
        "board",
        "mAP50-95",
        "mAP50",
        "Δ mAP50-95 / Δ mAP50",
        "box agreement",
        "inference ms p50/mean",
        "post ms p50/mean",
        "total ms p50/mean",
      ],
      rows,
    ) +
    `<p class="src">${r.images} images of ${esc(r.dataset)} (${esc(r.split)}); head ${esc(r.head.format)} (${esc(r.head.spec)}). ` +
    `Box agreement: share of the host's detections scoring ≥ ${r.drawScore} that the board also makes, same class, IoU ≥ 0.9. ` +
    `Post-processing: ${esc(r.postProcessing)}.</p>` +
    r.rows
      .filter((b) => b.timing?.emulated)
      .map((b) => `<p class="note">${esc(b.device)}: timings ${esc(b.timing!.note ?? "emulated")}.</p>`)
      .join("")
  );
}

function perClass(r: DetectValidationReport): string {
  const boards = r.rows.filter((b) => b.delta);
  const rows = r.host.metrics.perClass
    .filter((c) => c.gt > 0)
    .map((c) => [
      c.name,
      c.gt,
      f3(c.ap),
      ...boards.flatMap((b) => {
        const d = b.delta!.perClass.find((x) => x.cls === c.cls);
        return [f3(d?.board), signed(d?.delta)];
      }),
    ]);
  return table(
    [
      "class",
      "ground truth",
      "host AP50-95",
      ...boards.flatMap((b) => [`${b.device} AP50-95`, `${b.device} Δ`]),
    ],
    rows,
  );
}

/** The page. */
export function renderDetectReport(r: DetectValidationReport): string {
  const title = `qat detection validation — ${r.model}`;
  return `${pageHead(title, DETECT_STYLE)}
<body>
<header>
<h1>qat detection validation</h1>
<p class="meta"><code>${esc(r.model)}</code> · ${esc(r.dataset)} · ${r.images} images · ${r.rows.length} board(s)</p>
</header>
<main>
${section("summary", "Host and boards: mAP, agreement, latency", summary(r))}
${section("per-class", "AP per class, board − host", perClass(r))}
${section("pr", "Precision–recall per class (IoU 0.5)", charts(...prCurveCharts(r)))}
${section("samples", "Detections drawn: host and boards side by side", sampleDrawings(r).join(""))}
</main>
</body>
</html>
`;
}

/** Read a `qat validate --task detect --save` file. */
export function readDetectReport(file: string): DetectValidationReport {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ReportError(`cannot read the detection report (${(e as Error).message})`, file);
  }
  if ((json as { task?: string })?.task !== "detect")
    throw new ReportError('not a detection validation report (no "task": "detect")', file);
  return json as DetectValidationReport;
}

/** Write the page atomically; returns its size in bytes. */
export function writeDetectReport(r: DetectValidationReport, file: string): number {
  const html = renderDetectReport(r);
  writeFileAtomic(file, html);
  return Buffer.byteLength(html);
}
