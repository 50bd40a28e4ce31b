/**
 * An image made into a detector's input as its head spec asks: letterboxed (Ultralytics) or stretched (MediaPipe)
 * to the input size, laid out NCHW or NHWC, pixel values mapped linearly from 0–255 to the spec's range.
 */
import type { Image8 } from "../data/image.js";
import type { InputSpec } from "./head-spec.js";
import { type LetterboxInfo, letterbox, resample } from "./letterbox.js";

/** One sample's input values and where the source image landed in it (to map detections back). */
export function detectInput(img: Image8, spec: InputSpec): { data: Float32Array; info: LetterboxInfo } {
  const { width, height } = spec;
  let placed: { image: Image8; info: LetterboxInfo };
  if (spec.resize === "letterbox") placed = letterbox(img, width, height);
  else {
    const image = resample(img, { x: 0, y: 0, w: img.width, h: img.height }, width, height);
    const info: LetterboxInfo = {
      srcWidth: img.width,
      srcHeight: img.height,
      width,
      height,
      innerWidth: width,
      innerHeight: height,
      scaleX: width / img.width,
      scaleY: height / img.height,
      padX: 0,
      padY: 0,
    };
    placed = { image, info };
  }
  const src = placed.image;
  const [lo, hi] = spec.range;
  const k = (hi - lo) / 255;
  const n = width * height;
  const C = spec.channels;
  const data = new Float32Array(n * C);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < C; c++) {
      // grey to RGB by replication, RGB to grey by BT.601 luma, as the classifier inputs do
      const v =
        src.channels === C
          ? src.data[p * C + c]!
          : C === 3
            ? src.data[p]!
            : 0.299 * src.data[3 * p]! + 0.587 * src.data[3 * p + 1]! + 0.114 * src.data[3 * p + 2]!;
      data[spec.layout === "nhwc" ? p * C + c : c * n + p] = lo + v * k;
    }
  }
  return { data, info: placed.info };
}
