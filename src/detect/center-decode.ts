/**
 * Decoder of a CenterNet-style output (tiny-det), shared by the host and the board: [classes + 4, rows, cols] per
 * image, heatmap logits then four raw distances. A detection is a heatmap peak — a cell whose sigmoid score is at
 * least each of its 8 neighbours' in the same class (CenterNet's 3×3 max-pool) — with the box its cell's distances
 * give: softplus(raw) strides from the cell centre to each edge. NMS then only removes the rare duplicates of
 * plateaus; boxes are clipped to the input.
 */
import { clipBox, type Detection } from "./boxes.js";
import { type NmsOptions, nms } from "./nms.js";
import { boxAtCell } from "./targets.js";

export interface CenterDecodeOptions extends NmsOptions {
  /** Input pixels per output cell. */
  stride: number;
  /** Peaks kept per image before NMS, best first (default 100, COCO's maxDets). */
  topK?: number;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
/** log(1 + eˣ) without overflow, as ORT's Softplus. */
export const softplus = (z: number): number =>
  z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));

/**
 * Detections of each image of a batch output [n, classes + 4, rows, cols] (`dims`), boxes in input pixels.
 * Defaults suit mAP (score threshold 0.01, IoU 0.7): the caller raises the threshold for display.
 */
export function decodeCenterNet(
  data: ArrayLike<number>,
  dims: readonly number[],
  opts: CenterDecodeOptions,
): Detection[][] {
  if (dims.length !== 4 || (dims[1] ?? 0) < 5)
    throw new RangeError(`CenterNet output must be [n, classes+4, rows, cols], got [${dims.join(", ")}]`);
  const [n, channels, rows, cols] = dims as [number, number, number, number];
  if (data.length !== n * channels * rows * cols)
    throw new RangeError(
      `output has ${data.length} values, [${dims.join(", ")}] needs ${n * channels * rows * cols}`,
    );
  const classes = channels - 4;
  const plane = rows * cols;
  const threshold = opts.scoreThreshold ?? 0.01;
  // a logit threshold: sigmoid is monotone, so most cells are skipped without an exp
  const zMin = Math.log(threshold / (1 - threshold));
  const out: Detection[][] = [];
  for (let s = 0; s < n; s++) {
    const base = s * channels * plane;
    const cands: Detection[] = [];
    for (let c = 0; c < classes; c++) {
      const h = base + c * plane;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          const z = data[h + i * cols + j]!;
          if (!(z >= zMin) || !isPeak(data, h, rows, cols, i, j, z)) continue;
          const b = base + classes * plane + i * cols + j;
          const ltrb = [0, 1, 2, 3].map((k) => softplus(data[b + k * plane]!));
          const box = clipBox(boxAtCell(i, j, ltrb, opts.stride), cols * opts.stride, rows * opts.stride);
          cands.push({ cls: c, score: sigmoid(z), box });
        }
      }
    }
    cands.sort((a, b) => b.score - a.score);
    const top = cands.slice(0, opts.topK ?? 100);
    out.push(
      nms(top, {
        iouThreshold: opts.iouThreshold ?? 0.7,
        scoreThreshold: threshold,
        maxDetections: opts.maxDetections ?? 100,
        agnostic: opts.agnostic,
      }),
    );
  }
  return out;
}

/** Whether no 8-neighbour of cell (i, j) in the plane at `h` is higher (ties keep both; NMS settles them). */
function isPeak(
  data: ArrayLike<number>,
  h: number,
  rows: number,
  cols: number,
  i: number,
  j: number,
  z: number,
): boolean {
  for (let di = -1; di <= 1; di++) {
    const ii = i + di;
    if (ii < 0 || ii >= rows) continue;
    for (let dj = -1; dj <= 1; dj++) {
      const jj = j + dj;
      if (jj < 0 || jj >= cols || (di === 0 && dj === 0)) continue;
      if (data[h + ii * cols + jj]! > z) return false;
    }
  }
  return true;
}
