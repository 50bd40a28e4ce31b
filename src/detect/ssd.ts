/**
 * The SSD export layout: two tensors, scores [1, N, C] (one confidence per class per candidate) and boxes [1, N, 4]
 * (corners or centre and size, in pixels or normalised to the input). TensorFlow's SSD exports and many ONNX
 * conversions of detectors use it; which box form and whether a background column leads are properties of the
 * export, so they are options, never guessed.
 */
import { type Box, type Detection, fromCenter } from "./boxes.js";

export interface SsdLayout {
  /** How the four box values read: corners x1 y1 x2 y2, corners y1 x1 y2 x2 (TensorFlow), or cx cy w h. */
  boxFormat: "xyxy" | "yxyx" | "cxcywh";
  /** Box values are fractions of the input size (multiplied by it here) rather than pixels. */
  normalized: boolean;
  /** The score column of a background class to ignore (classes after it move down by one); absent: none. */
  background?: number;
  /** Scores are logits: apply the logistic function. */
  sigmoid: boolean;
}

export const DEFAULT_SSD_LAYOUT: SsdLayout = { boxFormat: "xyxy", normalized: false, sigmoid: false };

function readBox(b: ArrayLike<number>, at: number, f: SsdLayout["boxFormat"]): Box {
  const v0 = b[at]!;
  const v1 = b[at + 1]!;
  const v2 = b[at + 2]!;
  const v3 = b[at + 3]!;
  if (f === "xyxy") return { x1: v0, y1: v1, x2: v2, y2: v3 };
  if (f === "yxyx") return { x1: v1, y1: v0, x2: v3, y2: v2 };
  return fromCenter(v0, v1, v2, v3);
}

/**
 * Candidates of an SSD-layout output before NMS: each of the N takes its best class (the background column
 * skipped), kept when the score reaches `threshold`; boxes in pixels of the width × height input.
 */
export function ssdCandidates(
  scores: ArrayLike<number>,
  scoreDims: readonly number[],
  boxes: ArrayLike<number>,
  boxDims: readonly number[],
  opts: { layout: SsdLayout; threshold: number; width: number; height: number },
): Detection[] {
  if (scoreDims.length !== 3 || scoreDims[0] !== 1)
    throw new RangeError(`SSD scores must be [1, N, C], got [${scoreDims.join(", ")}]`);
  if (boxDims.length !== 3 || boxDims[0] !== 1 || boxDims[2] !== 4)
    throw new RangeError(`SSD boxes must be [1, N, 4], got [${boxDims.join(", ")}]`);
  const n = scoreDims[1]!;
  const c = scoreDims[2]!;
  if (boxDims[1] !== n)
    throw new RangeError(`SSD scores have ${n} candidates and boxes ${boxDims[1]}; they must agree`);
  if (scores.length !== n * c || boxes.length !== n * 4)
    throw new RangeError(
      `SSD outputs hold ${scores.length} and ${boxes.length} values, not ${n * c} and ${n * 4}`,
    );
  const { layout } = opts;
  const bg = layout.background ?? -1;
  const sx = layout.normalized ? opts.width : 1;
  const sy = layout.normalized ? opts.height : 1;
  const out: Detection[] = [];
  for (let a = 0; a < n; a++) {
    let cls = -1;
    let score = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < c; k++) {
      if (k === bg) continue;
      const raw = scores[a * c + k]!;
      const s = layout.sigmoid ? 1 / (1 + Math.exp(-raw)) : raw;
      if (s > score) {
        score = s;
        cls = bg >= 0 && k > bg ? k - 1 : k;
      }
    }
    if (cls < 0 || !(score >= opts.threshold)) continue;
    const b = readBox(boxes, a * 4, layout.boxFormat);
    out.push({ cls, score, box: { x1: b.x1 * sx, y1: b.y1 * sy, x2: b.x2 * sx, y2: b.y2 * sy } });
  }
  return out;
}
