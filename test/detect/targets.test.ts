import { expect, test } from "vitest";
import { iou, type LabeledBox } from "../../src/detect/boxes.js";
import { decodeCenterNet } from "../../src/detect/center-decode.js";
import { encodeTargets, peakRadius, type TargetGrid, targetShape } from "../../src/detect/targets.js";

const grid: TargetGrid = { classes: 10, stride: 4, rows: 24, cols: 24 };
const plane = grid.rows * grid.cols;

/**
 * The output a perfect detector would give for these targets: heatmap logits logit(y) (clamped away from ±∞) and,
 * where a box is assigned, the raw value whose softplus is the target distance; elsewhere very negative.
 */
function perfectOutput(t: Float32Array): Float32Array {
  const out = new Float32Array((grid.classes + 4) * plane);
  for (let c = 0; c < grid.classes; c++)
    for (let p = 0; p < plane; p++) {
      const y = Math.min(Math.max(t[c * plane + p]!, 1e-6), 1 - 1e-6);
      out[c * plane + p] = Math.log(y / (1 - y));
    }
  for (let k = 0; k < 4; k++)
    for (let p = 0; p < plane; p++) {
      const d = t[(grid.classes + k) * plane + p]!;
      out[(grid.classes + k) * plane + p] = d > 0 ? Math.log(Math.expm1(d)) : -30;
    }
  return out;
}

const scene: LabeledBox[] = [
  { cls: 3, box: { x1: 4, y1: 6, x2: 20, y2: 30 } },
  { cls: 7, box: { x1: 40.5, y1: 10, x2: 88, y2: 57 } },
  { cls: 3, box: { x1: 60, y1: 62, x2: 73, y2: 75 } },
  { cls: 0, box: { x1: 10, y1: 50, x2: 22, y2: 94 } },
];

test("encode → perfect output → decode gives the boxes and classes back", () => {
  const t = new Float32Array(targetShape(grid).reduce((a, b) => a * b, 1));
  encodeTargets(scene, grid, t);
  const [dets] = decodeCenterNet(perfectOutput(t), [1, grid.classes + 4, grid.rows, grid.cols], {
    stride: grid.stride,
    scoreThreshold: 0.5,
  });
  expect(dets).toHaveLength(scene.length);
  for (const o of scene) {
    const d = dets!.find((e) => e.cls === o.cls && iou(e.box, o.box) > 0.999);
    expect(d, `object of class ${o.cls} at ${JSON.stringify(o.box)}`).toBeDefined();
    for (const k of ["x1", "y1", "x2", "y2"] as const) expect(d!.box[k]).toBeCloseTo(o.box[k], 3);
  }
});

test("peak radius: a box shifted diagonally by it keeps IoU 0.7 with itself", () => {
  for (const [w, h] of [
    [3, 3],
    [12, 5],
    [2.5, 9],
  ] as const) {
    const r = peakRadius(w, h);
    const inter = (w - r) * (h - r);
    expect(inter / (2 * w * h - inter)).toBeCloseTo(0.7, 9);
  }
});

test("a cell two objects claim regresses the smaller one, whatever their order", () => {
  const small: LabeledBox = { cls: 1, box: { x1: 30, y1: 30, x2: 42, y2: 42 } }; // centre cell (9, 9)
  const big: LabeledBox = { cls: 2, box: { x1: 10, y1: 10, x2: 60, y2: 60 } }; // centre (35, 35): the same cell
  const t = new Float32Array(targetShape(grid).reduce((a, b) => a * b, 1));
  for (const order of [
    [small, big],
    [big, small],
  ]) {
    encodeTargets(order, grid, t);
    const cell = 8 * grid.cols + 8; // centre (34, 34): inside both boxes
    const left = t[grid.classes * plane + cell]! * grid.stride;
    expect(left).toBeCloseTo(34 - 30, 5);
  }
});

test("class out of range is refused", () => {
  const t = new Float32Array(targetShape(grid).reduce((a, b) => a * b, 1));
  expect(() => encodeTargets([{ cls: 10, box: { x1: 0, y1: 0, x2: 8, y2: 8 } }], grid, t)).toThrow(
    /class 10 is outside 0..9/,
  );
});

test("decoder: only 3×3 peaks above the score threshold, boxes from their cell", () => {
  const out = new Float32Array((grid.classes + 4) * plane).fill(-10);
  // one class-5 peak with a weaker neighbour (not a peak) and a separate weak peak below threshold
  out[5 * plane + 100] = 3;
  out[5 * plane + 101] = 2;
  out[5 * plane + 300] = -3;
  for (let k = 0; k < 4; k++) out[(grid.classes + k) * plane + 100] = Math.log(Math.expm1(2));
  const [dets] = decodeCenterNet(out, [1, grid.classes + 4, grid.rows, grid.cols], {
    stride: 4,
    scoreThreshold: 0.1,
  });
  expect(dets).toHaveLength(1);
  // cell 100 = row 4, column 4: centre (18, 18), 2 strides = 8 px to each edge
  const want = { x1: 10, y1: 10, x2: 26, y2: 26 };
  for (const k of ["x1", "y1", "x2", "y2"] as const) expect(dets![0]!.box[k]).toBeCloseTo(want[k], 5);
  expect(dets![0]!.score).toBeCloseTo(1 / (1 + Math.exp(-3)), 9);
  expect(() => decodeCenterNet(out, [1, 14, 24], { stride: 4 })).toThrow(
    /must be \[n, classes\+4, rows, cols\]/,
  );
});
