/**
 * COCO mAP at the edges the other cases do not reach, each value worked by hand: a box whose IoU is exactly a
 * threshold matches it (pycocotools skips only IoU < t), and the precision–recall curve the report plots (pr50)
 * is the envelope read at the 101 recall thresholds.
 */
import { describe, expect, it } from "vitest";
import type { Box } from "../../src/detect/boxes.js";
import { evaluateMap } from "../../src/detect/map.js";

const sq = (x: number, y: number, s = 10): Box => ({ x1: x, y1: y, x2: x + s, y2: y + s });

describe("COCO mAP: boundaries, by hand", () => {
  it("IoU exactly 0.5 matches at 0.5 and at no higher threshold: mAP50 1, mAP50-95 1/10", () => {
    // gt [0,10]×[0,10]; detection [0,10]×[0,5]: intersection 50, union 100 + 50 − 50 = 100, IoU 0.5 exactly
    const r = evaluateMap(
      [
        {
          gt: [{ cls: 0, box: sq(0, 0) }],
          dt: [{ cls: 0, score: 0.9, box: { x1: 0, y1: 0, x2: 10, y2: 5 } }],
        },
      ],
      { numClasses: 1 },
    );
    expect(r.map50).toBe(1);
    expect(r.perClass[0]!.apPerIou).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(r.map).toBeCloseTo(0.1, 12);
  });

  it("the plotted PR curve: a false positive between two hits", () => {
    // by score: hit (recall ½, precision 1), false positive (½, ½), hit (1, ⅔). Envelope: 1 up to recall ½, then ⅔.
    const r = evaluateMap(
      [
        {
          gt: [
            { cls: 0, box: sq(0, 0) },
            { cls: 0, box: sq(40, 0) },
          ],
          dt: [
            { cls: 0, score: 0.9, box: sq(0, 0) },
            { cls: 0, score: 0.8, box: sq(80, 80) },
            { cls: 0, score: 0.7, box: sq(40, 0) },
          ],
        },
      ],
      { numClasses: 1 },
    );
    const p = r.pr50[0]!.precision;
    expect(p.slice(0, 51).every((v) => v === 1)).toBe(true);
    expect(p.slice(51).every((v) => v === 2 / 3)).toBe(true);
    expect(r.map50).toBeCloseTo((51 + (50 * 2) / 3) / 101, 12);
  });
});
