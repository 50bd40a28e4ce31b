import { describe, expect, it } from "vitest";
import type { Box, Detection } from "../../src/detect/boxes.js";
import { decodeUltralytics } from "../../src/detect/decode.js";
import { letterboxGeometry, toLetterbox } from "../../src/detect/letterbox.js";
import { nms } from "../../src/detect/nms.js";

const sq = (x: number, y: number, s = 10): Box => ({ x1: x, y1: y, x2: x + s, y2: y + s });
const d = (cls: number, score: number, box: Box): Detection => ({ cls, score, box });

describe("NMS", () => {
  it("keeps the best of overlapping boxes of one class, and boxes of other classes", () => {
    const dets = [
      d(0, 0.6, sq(1, 0)), // IoU with the 0.9 box: 90/110 = 0.82 → suppressed
      d(0, 0.9, sq(0, 0)),
      d(1, 0.8, sq(0, 0)), // same place, other class → kept
      d(0, 0.7, sq(6, 0)), // IoU 40/160 = 0.25 → kept at 0.45
      d(0, 0.1, sq(50, 50)), // below the score threshold
    ];
    expect(nms(dets)).toEqual([dets[1], dets[2], dets[3]]);
    // a lower IoU threshold suppresses the 0.25 overlap too
    expect(nms(dets, { iouThreshold: 0.2 })).toEqual([dets[1], dets[2]]);
    // across classes, the class-1 box goes too
    expect(nms(dets, { agnostic: true })).toEqual([dets[1], dets[3]]);
    expect(nms(dets, { scoreThreshold: 0 })).toHaveLength(4);
    expect(nms(dets, { maxDetections: 2 })).toEqual([dets[1], dets[2]]);
  });

  it("suppresses greedily: a box suppressed by a kept one does not suppress others", () => {
    // A (0.9) suppresses B (0.8, IoU 0.82); C overlaps B at IoU 0.82 but A only at 40/160 = 0.25, so C stays
    const a = d(0, 0.9, sq(0, 0));
    const b = d(0, 0.8, sq(3, 0));
    const c = d(0, 0.7, sq(6, 0));
    expect(nms([c, b, a])).toEqual([a, c]);
  });
});

/** An Ultralytics-layout output [1, 4 + nc, N] from per-candidate (cx, cy, w, h, scores). */
function layout(cands: { c: [number, number, number, number]; s: number[] }[], nc: number): Float32Array {
  const n = cands.length;
  const out = new Float32Array((4 + nc) * n);
  cands.forEach((k, a) => {
    for (let j = 0; j < 4; j++) out[j * n + a] = k.c[j]!;
    for (let j = 0; j < nc; j++) out[(4 + j) * n + a] = k.s[j] ?? 0;
  });
  return out;
}

describe("Ultralytics decoder", () => {
  it("takes each candidate's best class, thresholds, runs NMS, and converts centres to corners", () => {
    const out = layout(
      [
        { c: [20, 20, 10, 10], s: [0.1, 0.9, 0.2] },
        { c: [21, 20, 10, 10], s: [0.1, 0.7, 0.2] }, // overlaps the first, same class → suppressed
        { c: [50, 40, 20, 8], s: [0.5, 0.1, 0.6] },
        { c: [5, 5, 4, 4], s: [0.2, 0.1, 0.1] }, // below 0.25
      ],
      3,
    );
    const dets = decodeUltralytics(out, [1, 7, 4]);
    expect(dets).toHaveLength(2);
    expect(dets[0]!.cls).toBe(1);
    expect(dets[0]!.score).toBeCloseTo(0.9, 6);
    expect(dets[0]!.box).toEqual({ x1: 15, y1: 15, x2: 25, y2: 25 });
    expect(dets[1]!.cls).toBe(2);
    expect(dets[1]!.box).toEqual({ x1: 40, y1: 36, x2: 60, y2: 44 });
  });

  it("maps boxes back through the letterbox the input was made with", () => {
    const info = letterboxGeometry(200, 100, 64, 64);
    const truth = { x1: 50, y1: 25, x2: 150, y2: 75 };
    const b = toLetterbox(truth, info);
    const out = layout(
      [{ c: [(b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2, b.x2 - b.x1, b.y2 - b.y1], s: [0.8] }],
      1,
    );
    const [det] = decodeUltralytics(out, [1, 5, 1], { letterbox: info });
    for (const k of ["x1", "y1", "x2", "y2"] as const) expect(det!.box[k]).toBeCloseTo(truth[k], 4);
  });

  it("rejects shapes that are not [1, 4+nc, N]", () => {
    expect(() => decodeUltralytics(new Float32Array(8), [1, 4, 2])).toThrow(/4\+nc/);
    expect(() => decodeUltralytics(new Float32Array(9), [1, 5, 2])).toThrow(/needs 10/);
  });
});
