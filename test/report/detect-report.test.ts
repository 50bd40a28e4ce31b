/**
 * The detection report page from a validation report: one PR chart per class with ground truth (host and each
 * board), each sample drawn once per side with its ground truth and detections, an unreadable sample image drawn
 * on grey with a note, and no script or outside reference. The browser check of a real run's page is in
 * test/devices/validate-detect.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  agreementOf,
  type DetectMetrics,
  type DetectValidationReport,
} from "../../src/detect/drift-report.js";
import { RECALL_THRESHOLDS } from "../../src/detect/map.js";
import { readDetectReport, renderDetectReport } from "../../src/report/detect-report.js";
import { SHARED } from "../helpers/paths.js";

const dir = mkdtempSync(join(tmpdir(), "qat-detect-report-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stat = (v: number) => ({ p50: v, p90: v, p99: v, mean: v, max: v });
const metrics = (ap: number): DetectMetrics => ({
  map: ap,
  map50: ap,
  perClass: [
    { cls: 0, name: "face", gt: 1, ap, ap50: ap },
    { cls: 1, name: "<b>cat</b>", gt: 0, ap: Number.NaN, ap50: Number.NaN },
  ],
  pr50: [{ cls: 0, name: "face", precision: RECALL_THRESHOLDS.map((r) => (r <= 0.5 ? 1 : 0)) }],
});
const face = { cls: 0, score: 0.9, box: { x1: 180, y1: 80, x2: 270, y2: 175 } };

function report(): DetectValidationReport {
  return {
    task: "detect",
    model: "m.onnx",
    dataset: "faces",
    split: "val",
    images: 2,
    classNames: ["face", "<b>cat</b>"],
    head: { format: "anchors", spec: "s.json" },
    postProcessing: "on the host",
    host: { metrics: metrics(0.5), latencyMs: { inference: stat(15), post: stat(0.2), total: stat(15.2) } },
    rows: [
      {
        device: "rpi4",
        board: "raspberry-pi-4",
        arch: "arm64",
        metrics: metrics(0.5),
        delta: { map: 0, map50: 0, perClass: [{ cls: 0, name: "face", host: 0.5, board: 0.5, delta: 0 }] },
        agreement: agreementOf([[face], []], [[face], []]),
        latencyMs: { inference: stat(1100), post: stat(0.2), total: stat(1100.2) },
        peakRssBytes: 1,
        samples: [[face], []],
      },
      { device: "gone", error: { code: "unreachable", message: "no route" } },
    ],
    drawScore: 0.75,
    samples: [
      {
        file: join(SHARED, "data", "images", "astronaut.png"),
        width: 512,
        height: 512,
        gt: [{ cls: 0, box: { x1: 176, y1: 72, x2: 274, y2: 186 } }],
        host: [face],
      },
      { file: join(dir, "missing.png"), width: 64, height: 64, gt: [], host: [] },
    ],
    failed: 1,
    exceeded: true,
  };
}

describe("the detection report page", () => {
  const html = renderDetectReport(report());

  it("draws one PR chart per class with ground truth, host and board", () => {
    expect(html.match(/data-chart="pr-\d+"/g)).toEqual(['data-chart="pr-0"']);
    expect(html).toContain("host AP50 0.500 · rpi4 AP50 0.500");
  });

  it("draws each sample once per side, ground truth dashed, the unreadable image on grey", () => {
    expect(html.match(/class="detect-panel"/g)).toHaveLength(4);
    expect(html.match(/<image href="data:image\/png;base64,/g)).toHaveLength(2);
    expect(html).toContain(`${join(dir, "missing.png")} could not be read; boxes drawn on grey.`);
    // astronaut: gt + host face, gt + board face
    expect(html.match(/<rect[^>]*stroke-dasharray="4 3"/g)).toHaveLength(2);
    expect(html).toContain("face 0.90");
  });

  it("tables the failed board and escapes names; no script, no outside reference", () => {
    expect(html).toContain("failed: no route");
    expect(html).toContain("100.0% (1/1)");
    expect(html).not.toContain("<b>cat</b>");
    expect(html).not.toMatch(/<script|src="http|href="http/);
  });

  it("reads a saved report back, and refuses one of another kind (exit 2)", () => {
    const ok = join(dir, "r.json");
    writeFileSync(ok, JSON.stringify(report()));
    expect(readDetectReport(ok).rows[0]!.device).toBe("rpi4");
    const other = join(dir, "o.json");
    writeFileSync(other, JSON.stringify({ rows: [] }));
    expect(() => readDetectReport(other)).toThrow(
      `${other}: not a detection validation report (no "task": "detect")`,
    );
  });
});
