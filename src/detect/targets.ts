/**
 * Training targets of a CenterNet-style anchor-free detector (tiny-det), assigned here in the data pipeline so the
 * training graph only compares tensors. Per image, on the output grid (input size / stride):
 *  - channels 0..C−1, the class heatmaps: a Gaussian peak of 1 at the cell holding each object's centre, spread by
 *    a radius that depends on the box size (larger boxes tolerate larger offsets at the same IoU), the max where
 *    two objects' Gaussians meet;
 *  - channels C..C+3, the distances from a cell's centre to the box's left, top, right and bottom edges, in units of
 *    the stride, at the centre cell and those of its 8 neighbours whose centre lies inside the box;
 *  - channel C+4, the weight of those box targets: 1 at the centre cell, the heatmap value at a neighbour, 0 elsewhere.
 *    A cell claimed by two objects keeps the smaller one's (as FCOS does), so a small digit beside a large one is
 *    not regressed to the large one's edges.
 */
import { type Box, boxArea, type LabeledBox } from "./boxes.js";

export interface TargetGrid {
  classes: number;
  /** Input pixels per output cell. */
  stride: number;
  /** Output cells down and across (input height / stride, input width / stride). */
  rows: number;
  cols: number;
}

/** Channels of one image's target tensor: the heatmaps, four distances and the box weight. */
export function targetChannels(grid: TargetGrid): number {
  return grid.classes + 5;
}

/** One image's target shape [channels, rows, cols], the training step's `targetShape`. */
export function targetShape(grid: TargetGrid): number[] {
  return [targetChannels(grid), grid.rows, grid.cols];
}

/** The IoU a box shifted diagonally by the radius still has with itself (CenterNet's 0.7). */
const MIN_OVERLAP = 0.7;

/**
 * The largest diagonal shift r (in cells) of a w × h box that keeps its IoU with the unshifted box ≥ `overlap`:
 * (w − r)(h − r) / (2wh − (w − r)(h − r)) ≥ m  ⇔  r² − (w + h)·r + wh·(1 − 2m/(1 + m)) ≥ 0, the smaller root.
 */
export function peakRadius(w: number, h: number, overlap = MIN_OVERLAP): number {
  const s = w + h;
  const c = w * h * (1 - (2 * overlap) / (1 + overlap));
  return Math.max(0, (s - Math.sqrt(Math.max(0, s * s - 4 * c))) / 2);
}

/**
 * Write one image's targets into `out` at `offset` (targetChannels·rows·cols floats, zeroed here first). Boxes are
 * in pixels of the model input; classes must be below grid.classes.
 */
export function encodeTargets(
  objects: readonly LabeledBox[],
  grid: TargetGrid,
  out: Float32Array,
  offset = 0,
): void {
  const { classes, stride, rows, cols } = grid;
  const plane = rows * cols;
  out.fill(0, offset, offset + targetChannels(grid) * plane);
  // larger objects first: a cell two objects claim ends with the smaller one's box
  const order = objects
    .map((o, i) => ({ o, i }))
    .sort((a, b) => boxArea(b.o.box) - boxArea(a.o.box) || a.i - b.i);
  for (const { o } of order) {
    if (!(o.cls >= 0 && o.cls < classes && Number.isInteger(o.cls)))
      throw new RangeError(`object class ${o.cls} is outside 0..${classes - 1}`);
    const b = o.box;
    const cx = (b.x1 + b.x2) / 2;
    const cy = (b.y1 + b.y2) / 2;
    const ci = Math.min(rows - 1, Math.max(0, Math.floor(cy / stride)));
    const cj = Math.min(cols - 1, Math.max(0, Math.floor(cx / stride)));
    const r = peakRadius((b.x2 - b.x1) / stride, (b.y2 - b.y1) / stride);
    const sigma = (2 * Math.floor(r) + 1) / 6;
    const reach = Math.floor(r);
    const heat = offset + o.cls * plane;
    for (let i = Math.max(0, ci - reach); i <= Math.min(rows - 1, ci + reach); i++) {
      for (let j = Math.max(0, cj - reach); j <= Math.min(cols - 1, cj + reach); j++) {
        const d2 = (i - ci) ** 2 + (j - cj) ** 2;
        const v = d2 === 0 ? 1 : Math.exp(-d2 / (2 * sigma * sigma));
        const k = heat + i * cols + j;
        if (v > out[k]!) out[k] = v;
      }
    }
    for (let i = Math.max(0, ci - 1); i <= Math.min(rows - 1, ci + 1); i++) {
      for (let j = Math.max(0, cj - 1); j <= Math.min(cols - 1, cj + 1); j++) {
        const px = (j + 0.5) * stride;
        const py = (i + 0.5) * stride;
        if (!(px > b.x1 && px < b.x2 && py > b.y1 && py < b.y2)) continue;
        const d2 = (i - ci) ** 2 + (j - cj) ** 2;
        const cell = i * cols + j;
        const base = offset + classes * plane + cell;
        out[base] = (px - b.x1) / stride;
        out[base + plane] = (py - b.y1) / stride;
        out[base + 2 * plane] = (b.x2 - px) / stride;
        out[base + 3 * plane] = (b.y2 - py) / stride;
        out[base + 4 * plane] = d2 === 0 ? 1 : Math.exp(-d2 / (2 * Math.max(sigma, 0.5) ** 2));
      }
    }
  }
}

/** The box a cell's four distances (in strides) describe, in pixels. */
export function boxAtCell(i: number, j: number, ltrb: readonly number[], stride: number): Box {
  const px = (j + 0.5) * stride;
  const py = (i + 0.5) * stride;
  return {
    x1: px - ltrb[0]! * stride,
    y1: py - ltrb[1]! * stride,
    x2: px + ltrb[2]! * stride,
    y2: py + ltrb[3]! * stride,
  };
}
