/**
 * Decoders from a detector's raw output to detections, shared by the host and the board. The Ultralytics export
 * layout: one tensor [1, 4 + nc, N] — for each of N candidate boxes, its centre x, centre y, width and height in
 * input pixels and one score per class (already sigmoid-ed), channels first.
 */
import { type Detection, fromCenter } from "./boxes.js";
import { fromLetterbox, type LetterboxInfo } from "./letterbox.js";
import { type NmsOptions, nms } from "./nms.js";

export interface DecodeOptions extends NmsOptions {
  /** Map boxes from the model input back to the original image (the letterbox the input was made with). */
  letterbox?: LetterboxInfo;
}

/**
 * Detections from an Ultralytics-layout output: each candidate takes its best class (as Ultralytics does without
 * multi-label), candidates below the score threshold are dropped, NMS runs, and boxes are mapped back through the
 * letterbox when one is given.
 */
export function decodeUltralytics(
  data: ArrayLike<number>,
  dims: readonly number[],
  opts: DecodeOptions = {},
): Detection[] {
  if (dims.length !== 3 || dims[0] !== 1 || (dims[1] ?? 0) < 5)
    throw new RangeError(`Ultralytics output must be [1, 4+nc, N] with nc ≥ 1, got [${dims.join(", ")}]`);
  const channels = dims[1]!;
  const n = dims[2]!;
  if (data.length !== channels * n)
    throw new RangeError(`output has ${data.length} values, [${dims.join(", ")}] needs ${channels * n}`);
  const nc = channels - 4;
  const threshold = opts.scoreThreshold ?? 0.25;
  const candidates: Detection[] = [];
  for (let a = 0; a < n; a++) {
    let cls = 0;
    let score = data[4 * n + a]!;
    for (let c = 1; c < nc; c++) {
      const s = data[(4 + c) * n + a]!;
      if (s > score) {
        score = s;
        cls = c;
      }
    }
    if (!(score >= threshold)) continue;
    const box = fromCenter(data[a]!, data[n + a]!, data[2 * n + a]!, data[3 * n + a]!);
    candidates.push({ cls, score, box });
  }
  const kept = nms(candidates, opts);
  const lb = opts.letterbox;
  return lb ? kept.map((d) => ({ ...d, box: fromLetterbox(d.box, lb) })) : kept;
}
