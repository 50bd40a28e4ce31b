/**
 * Training-time augmentation of a detection sample that keeps its boxes true to the pixels: a horizontal flip and a
 * scale-crop (a window of the image, same aspect ratio, resized back to the full size). Boxes cut by the window are
 * clipped to it, and dropped when most of the object is outside (what is left would teach the model that a
 * fragment is a whole object). Randomness comes from the caller's `Rng`, so a seed fixes every draw.
 */
import type { Image8 } from "../data/image.js";
import { Rng } from "../util/rng.js";
import { boxArea, boxHeight, boxWidth, flipBoxX, type LabeledBox, scaleBox } from "./boxes.js";
import { type Rect, resample } from "./letterbox.js";

export interface DetectionSample {
  image: Image8;
  objects: LabeledBox[];
}

/** The image mirrored left-right, with its boxes. */
export function flipHorizontal(s: DetectionSample): DetectionSample {
  const { width: W, height: H, channels: C, data } = s.image;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let x = 0; x < W; x++) {
      const from = (row + x) * C;
      const to = (row + W - 1 - x) * C;
      for (let c = 0; c < C; c++) out[to + c] = data[from + c]!;
    }
  }
  return {
    image: { width: W, height: H, channels: C, data: out },
    objects: s.objects.map((o) => ({ cls: o.cls, box: flipBoxX(o.box, W) })),
  };
}

/**
 * The objects as seen through `rect` of the image, stretched to outW × outH: each box clipped to the window, kept
 * only if at least `minVisible` of its area is inside it (and something is left).
 */
export function cropObjects(
  objects: readonly LabeledBox[],
  rect: Rect,
  outW: number,
  outH: number,
  minVisible: number,
): LabeledBox[] {
  const sx = outW / rect.w;
  const sy = outH / rect.h;
  const kept: LabeledBox[] = [];
  for (const o of objects) {
    const b = o.box;
    const clipped = {
      x1: Math.max(b.x1, rect.x),
      y1: Math.max(b.y1, rect.y),
      x2: Math.min(b.x2, rect.x + rect.w),
      y2: Math.min(b.y2, rect.y + rect.h),
    };
    if (boxWidth(clipped) <= 0 || boxHeight(clipped) <= 0) continue;
    const whole = boxArea(b);
    if (whole > 0 && boxArea(clipped) / whole < minVisible) continue;
    kept.push({ cls: o.cls, box: scaleBox(clipped, sx, sy, -rect.x * sx, -rect.y * sy) });
  }
  return kept;
}

export interface ScaleCropOptions {
  /** Smallest window side as a share of the image side (default 0.6). */
  minScale?: number;
  /** Largest (default 1: the whole image, only moved by nothing). */
  maxScale?: number;
  /** Keep a cut box when at least this share of its area is inside the window (default 0.5). */
  minVisible?: number;
}

/** A random window (scale drawn in [minScale, maxScale], position uniform), resized back to the image size. */
export function scaleCrop(
  s: DetectionSample,
  rng: Rng,
  opts: ScaleCropOptions = {},
): DetectionSample & { rect: Rect } {
  const minScale = opts.minScale ?? 0.6;
  const maxScale = opts.maxScale ?? 1;
  if (!(minScale > 0 && minScale <= maxScale && maxScale <= 1))
    throw new RangeError(
      `scale-crop scales must satisfy 0 < minScale ≤ maxScale ≤ 1, got ${minScale}, ${maxScale}`,
    );
  const { width: W, height: H } = s.image;
  const scale = rng.uniform(minScale, maxScale);
  const w = W * scale;
  const h = H * scale;
  const rect = { x: rng.uniform(0, W - w), y: rng.uniform(0, H - h), w, h };
  return {
    image: resample(s.image, rect, W, H),
    objects: cropObjects(s.objects, rect, W, H, opts.minVisible ?? 0.5),
    rect,
  };
}

export interface DetectionAugmentOptions {
  /** Mirror with probability 1/2 (default true). */
  flip?: boolean;
  /** Scale-crop with probability `cropProbability` (default: on, with the defaults of ScaleCropOptions). */
  scaleCrop?: ScaleCropOptions | false;
  /** Default 0.5. */
  cropProbability?: number;
}

/**
 * One augmented view of a sample. The draws happen in a fixed order (crop?, crop window, flip?) whatever the
 * options, so the same rng state gives the same view.
 */
export function augmentDetection(
  s: DetectionSample,
  rng: Rng,
  opts: DetectionAugmentOptions = {},
): DetectionSample {
  let out = s;
  const crop = rng.next() < (opts.cropProbability ?? 0.5);
  // the window is drawn from its own stream, so turning cropping off does not change the flip draws
  const cropRng = new Rng(rng.nextU32());
  if (opts.scaleCrop !== false && crop) out = scaleCrop(out, cropRng, opts.scaleCrop ?? {});
  const flip = rng.next() < 0.5;
  if (opts.flip !== false && flip) out = flipHorizontal(out);
  return out;
}
