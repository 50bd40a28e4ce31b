/**
 * Charts of a detection validation: precision–recall curves at IoU 0.5 per class (the host solid, each board
 * dashed; drawn by ECharts' server-side SVG renderer like every chart of the report), and sample images with the
 * host's and the board's detections drawn side by side as SVG over the image, downscaled and embedded as PNG.
 */
import { readFileSync } from "node:fs";
import { encode as encodePng } from "fast-png";
import { decodeImage, type Image8 } from "../data/image.js";
import type { Box } from "../detect/boxes.js";
import type {
  DetectMetrics,
  DetectSample,
  DetectValidationReport,
  DrawnDetection,
} from "../detect/drift-report.js";
import { resample } from "../detect/letterbox.js";
import { RECALL_THRESHOLDS } from "../detect/map.js";
import { axis, type Chart, COLORS, render } from "./charts.js";
import { esc } from "./html.js";

const BOARD_COLORS = [COLORS.board, COLORS.qat, COLORS.int8, COLORS.float];

/** One chart per class with ground truth: precision against recall at IoU 0.5, host and boards. */
export function prCurveCharts(r: DetectValidationReport): Chart[] {
  const sides: { name: string; metrics: DetectMetrics; color: string; dashed: boolean }[] = [
    { name: "host", metrics: r.host.metrics, color: COLORS.host, dashed: false },
    ...r.rows.flatMap((row, i) =>
      row.metrics
        ? [{ name: row.device, metrics: row.metrics, color: BOARD_COLORS[i % 4]!, dashed: true }]
        : [],
    ),
  ];
  return r.host.metrics.pr50.map((curve) => {
    const ap = (m: DetectMetrics) => m.perClass[curve.cls]?.ap50 ?? Number.NaN;
    return {
      id: `pr-${curve.cls}`,
      title: `Precision–recall, class ${curve.name} (IoU 0.5)`,
      caption: sides.map((s) => `${s.name} AP50 ${ap(s.metrics).toFixed(3)}`).join(" · "),
      svg: render(
        {
          legend: { top: 4 },
          grid: { left: 56, right: 16, top: 36, bottom: 48 },
          xAxis: { type: "value", min: 0, max: 1, ...axis("recall") },
          yAxis: { type: "value", min: 0, max: 1, ...axis("precision", { nameGap: 36 }) },
          series: sides.map((s) => ({
            type: "line" as const,
            name: s.name,
            color: s.color,
            showSymbol: false,
            step: "end" as const,
            lineStyle: { width: 2, type: s.dashed ? ("dashed" as const) : ("solid" as const) },
            data: RECALL_THRESHOLDS.map((rc, k) => [
              rc,
              s.metrics.pr50.find((p) => p.cls === curve.cls)?.precision[k] ?? 0,
            ]),
          })),
        },
        380,
        260,
      ),
    };
  });
}

/**
 * The image as a PNG data URL, downscaled so its longer side is at most `max` pixels (a small image stays as it is
 * and the SVG enlarges it); undefined when unreadable.
 */
function thumbnail(file: string, max: number): string | undefined {
  let img: Image8;
  try {
    img = decodeImage(readFileSync(file), file);
  } catch {
    return undefined;
  }
  const scale = Math.min(1, max / Math.max(img.width, img.height));
  const w = Math.max(1, Math.round(img.width * scale));
  const h = Math.max(1, Math.round(img.height * scale));
  const small = scale < 1 ? resample(img, { x: 0, y: 0, w: img.width, h: img.height }, w, h) : img;
  const png = encodePng({ width: w, height: h, data: small.data, channels: small.channels, depth: 8 });
  return `data:image/png;base64,${Buffer.from(png).toString("base64")}`;
}

function rect(b: Box, s: number, color: string, dashed: boolean): string {
  const [x, y, w, h] = [b.x1 * s, b.y1 * s, (b.x2 - b.x1) * s, (b.y2 - b.y1) * s].map((v) => v.toFixed(1));
  return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="${color}" stroke-width="2"${dashed ? ' stroke-dasharray="4 3"' : ""}/>`;
}

function panel(
  title: string,
  sample: DetectSample,
  dets: DrawnDetection[],
  names: string[],
  thumb: string | undefined,
  size: number,
): string {
  // every panel `size` pixels on its longer side, whatever the image's size
  const s = size / Math.max(sample.width, sample.height);
  const w = Math.round(sample.width * s);
  const h = Math.round(sample.height * s);
  const bg = thumb
    ? `<image href="${thumb}" x="0" y="0" width="${w}" height="${h}" preserveAspectRatio="none"/>`
    : `<rect width="${w}" height="${h}" fill="#ddd"/>`;
  const gt = sample.gt.map((g) => rect(g.box, s, "#ffffff", true)).join("");
  const boxes = dets
    .map(
      (d) =>
        rect(d.box, s, COLORS.board, false) +
        `<text x="${(d.box.x1 * s + 2).toFixed(1)}" y="${Math.max(10, d.box.y1 * s - 2).toFixed(1)}" font-size="10" fill="${COLORS.board}" stroke="#fff" stroke-width="0.3">${esc(names[d.cls] ?? d.cls)} ${d.score.toFixed(2)}</text>`,
    )
    .join("");
  return `<figure class="detect-panel"><figcaption>${esc(title)} (${dets.length})</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${bg}${gt}${boxes}</svg></figure>`;
}

/** Each sample image: the host's detections, then each board's, side by side; ground truth dashed white. */
export function sampleDrawings(r: DetectValidationReport, size = 256): string[] {
  return r.samples.map((sample, i) => {
    const thumb = thumbnail(sample.file, size);
    const panels = [panel("host", sample, sample.host, r.classNames, thumb, size)];
    for (const row of r.rows)
      if (row.samples)
        panels.push(panel(row.device, sample, row.samples[i] ?? [], r.classNames, thumb, size));
    const missing = thumb
      ? ""
      : `<p class="na">${esc(sample.file)} could not be read; boxes drawn on grey.</p>`;
    return `<div class="detect-sample" data-sample="${i}"><p class="src">${esc(sample.file)}</p><div class="detect-row">${panels.join("")}</div>${missing}</div>`;
  });
}
