/** The human form of a detection validation report: one line per side, then the per-class AP deltas. */
import type { DetectValidationReport, Stat } from "../../src/detect/drift-report.js";

const f3 = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v.toFixed(3) : "–");
const pt = (v: number | undefined) =>
  v !== undefined && Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${(100 * v).toFixed(2)} pt` : "–";
const lat = (s: Stat) => `${s.p50.toFixed(2)} ms p50 (mean ${s.mean.toFixed(2)})`;

export function formatDetectReport(r: DetectValidationReport): string {
  const h = r.host;
  const lines = [
    `detection validation: ${r.model} on ${r.images} images of ${r.dataset} (${r.split}), head ${r.head.format} (${r.head.spec})`,
    `host: mAP50-95 ${f3(h.metrics.map)}  mAP50 ${f3(h.metrics.map50)}  inference ${lat(h.latencyMs.inference)}, post-processing ${lat(h.latencyMs.post)}`,
  ];
  for (const b of r.rows) {
    if (b.error) {
      lines.push(`${b.device}: FAILED (${b.error.code}) ${b.error.message}`);
      continue;
    }
    const a = b.agreement!;
    const l = b.latencyMs!;
    lines.push(
      `${b.device} (${b.board}, ${b.arch}): mAP50-95 ${f3(b.metrics!.map)} (${pt(b.delta!.map)})  mAP50 ${f3(b.metrics!.map50)} (${pt(b.delta!.map50)})`,
      `  box agreement ${(100 * a.share).toFixed(1)}% (${a.matched}/${a.hostDetections} host detections ≥ ${a.minScore} matched, same class, IoU ≥ ${a.iou})`,
      `  latency per image: inference ${lat(l.inference)} + post-processing ${lat(l.post)} = ${lat(l.total)}` +
        (b.timing?.emulated ? ` — EMULATED (${b.timing.note})` : ""),
      `  AP50-95 per class (board − host): ${b.delta!.perClass.map((c) => `${c.name} ${pt(c.delta)}`).join(", ")}`,
    );
  }
  lines.push(`post-processing: ${r.postProcessing}`);
  return lines.join("\n");
}
