/**
 * Anchor-based heads (SSD, BlazeFace): the anchor grid generated from strides, scales and offsets the way
 * MediaPipe's SSD anchor calculator lays it out, and the box coding that turns each anchor's raw regressor row into
 * a box (centre offsets and sizes divided by a scale — the input size for BlazeFace — times the anchor size, plus
 * the anchor centre), with optional keypoints coded the same way. Anchors and decoded boxes are normalised to the
 * input ([0, 1]); the decoder multiplies by the input size to give pixels like every other decoder here.
 */
import type { Detection } from "./boxes.js";

/** An anchor: centre and size, normalised to the input. */
export interface Anchor {
  cx: number;
  cy: number;
  w: number;
  h: number;
}

export interface AnchorOptions {
  /** Input size the grid covers (pixels). */
  inputWidth: number;
  inputHeight: number;
  /** One stride per layer; consecutive layers with the same stride share one feature map (their anchors interleave). */
  strides: number[];
  /** Anchor scales of the first and last layer; the layers between are spaced linearly. */
  minScale: number;
  maxScale: number;
  /** One anchor per aspect ratio (w/h) per layer. */
  aspectRatios: number[];
  /** > 0: one more anchor per layer with this ratio and the geometric mean of this layer's and the next one's scale. */
  interpolatedScaleAspectRatio: number;
  /** Where in a cell the anchor centre sits (0.5: the middle). */
  offsetX: number;
  offsetY: number;
  /** Every anchor 1×1 (the regressor's sizes are then relative to the input, as in BlazeFace). */
  fixedAnchorSize: boolean;
  /** The first layer gets three anchors (scale 0.1 at ratio 1, then ratios 2 and 0.5), as the original SSD does. */
  reduceBoxesInLowestLayer: boolean;
}

function layerScale(o: AnchorOptions, layer: number): number {
  const n = o.strides.length;
  return n === 1 ? (o.minScale + o.maxScale) / 2 : o.minScale + ((o.maxScale - o.minScale) * layer) / (n - 1);
}

/** The (ratio, scale) pairs of one layer. */
function layerShapes(o: AnchorOptions, layer: number): { ratio: number; scale: number }[] {
  const scale = layerScale(o, layer);
  if (layer === 0 && o.reduceBoxesInLowestLayer)
    return [
      { ratio: 1, scale: 0.1 },
      { ratio: 2, scale },
      { ratio: 0.5, scale },
    ];
  const out = o.aspectRatios.map((ratio) => ({ ratio, scale }));
  if (o.interpolatedScaleAspectRatio > 0) {
    const next = layer === o.strides.length - 1 ? 1 : layerScale(o, layer + 1);
    out.push({ ratio: o.interpolatedScaleAspectRatio, scale: Math.sqrt(scale * next) });
  }
  return out;
}

/**
 * The anchors in the order the head emits them: feature map after feature map (layers of equal stride merged), row
 * after row, column after column, then the anchors of a cell.
 */
export function generateAnchors(o: AnchorOptions): Anchor[] {
  if (!o.strides.length) throw new RangeError("anchors: strides must list at least one layer");
  const anchors: Anchor[] = [];
  let layer = 0;
  while (layer < o.strides.length) {
    const stride = o.strides[layer]!;
    if (!(stride > 0)) throw new RangeError(`anchors: stride ${stride} of layer ${layer} must be positive`);
    const shapes: { ratio: number; scale: number }[] = [];
    let last = layer;
    for (; last < o.strides.length && o.strides[last] === stride; last++)
      shapes.push(...layerShapes(o, last));
    const rows = Math.ceil(o.inputHeight / stride);
    const cols = Math.ceil(o.inputWidth / stride);
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < cols; x++) {
        for (const s of shapes) {
          const root = Math.sqrt(s.ratio);
          anchors.push({
            cx: (x + o.offsetX) / cols,
            cy: (y + o.offsetY) / rows,
            w: o.fixedAnchorSize ? 1 : s.scale * root,
            h: o.fixedAnchorSize ? 1 : s.scale / root,
          });
        }
      }
    }
    layer = last;
  }
  return anchors;
}

/** How a regressor row codes a box relative to its anchor. */
export interface BoxCoding {
  /** Values per anchor in the regressor output (4 box values, then 2 per keypoint, possibly more). */
  coords: number;
  /** Order of the four box values: x, y, w, h (BlazeFace) or y, x, h, w (TensorFlow's SSD). */
  order: "xywh" | "yxhw";
  /** Divisors of the centre offsets and sizes (BlazeFace: 128, the input size). */
  xScale: number;
  yScale: number;
  wScale: number;
  hScale: number;
  /** Sizes coded as logs (w = exp(raw / wScale) · anchor w), as TensorFlow's SSD does; BlazeFace codes them linearly. */
  exponentialSize: boolean;
  /** Keypoints after the box, two values (x, y) each. */
  keypoints: number;
}

/** How raw scores become confidences. */
export interface ScoreCoding {
  /** Apply the logistic function to the raw values. */
  sigmoid: boolean;
  /** Clip raw values to ±clip before the sigmoid (0: no clipping); BlazeFace uses 100. */
  clip: number;
}

/** A detection with the head's keypoints (pixels of the model input, or of the source image after the letterbox). */
export interface KeypointDetection extends Detection {
  keypoints?: { x: number; y: number }[];
}

/** The decoded box (and keypoints) of one anchor, in pixels of a width × height input. */
export function decodeAnchorBox(
  raw: ArrayLike<number>,
  at: number,
  a: Anchor,
  c: BoxCoding,
  width: number,
  height: number,
): Pick<KeypointDetection, "box" | "keypoints"> {
  const [ix, iy, iw, ih] = c.order === "xywh" ? [0, 1, 2, 3] : [1, 0, 3, 2];
  const cx = (raw[at + ix!]! / c.xScale) * a.w + a.cx;
  const cy = (raw[at + iy!]! / c.yScale) * a.h + a.cy;
  const sw = raw[at + iw!]! / c.wScale;
  const sh = raw[at + ih!]! / c.hScale;
  const w = (c.exponentialSize ? Math.exp(sw) : sw) * a.w;
  const h = (c.exponentialSize ? Math.exp(sh) : sh) * a.h;
  const box = {
    x1: (cx - w / 2) * width,
    y1: (cy - h / 2) * height,
    x2: (cx + w / 2) * width,
    y2: (cy + h / 2) * height,
  };
  if (c.keypoints === 0) return { box };
  const keypoints = [];
  for (let k = 0; k < c.keypoints; k++) {
    const kx = raw[at + 4 + 2 * k]!;
    const ky = raw[at + 5 + 2 * k]!;
    keypoints.push({
      x: ((kx / c.xScale) * a.w + a.cx) * width,
      y: ((ky / c.yScale) * a.h + a.cy) * height,
    });
  }
  return { box, keypoints };
}

/** A raw score as a confidence. */
export function scoreOf(raw: number, s: ScoreCoding): number {
  const v = s.clip > 0 ? Math.min(Math.max(raw, -s.clip), s.clip) : raw;
  return s.sigmoid ? 1 / (1 + Math.exp(-v)) : v;
}

/**
 * Candidates of an anchor head, before NMS: for each anchor its best class (scores [N, C] row-major), kept when it
 * reaches `threshold`, with its decoded box in pixels of the width × height input.
 */
export function anchorCandidates(
  scores: ArrayLike<number>,
  regressors: ArrayLike<number>,
  anchors: readonly Anchor[],
  opts: {
    classes: number;
    box: BoxCoding;
    score: ScoreCoding;
    threshold: number;
    width: number;
    height: number;
  },
): KeypointDetection[] {
  const n = anchors.length;
  if (scores.length !== n * opts.classes)
    throw new RangeError(
      `anchor head: ${scores.length} score values, ${n} anchors × ${opts.classes} classes need ${n * opts.classes}`,
    );
  if (regressors.length !== n * opts.box.coords)
    throw new RangeError(
      `anchor head: ${regressors.length} regressor values, ${n} anchors × ${opts.box.coords} coords need ${n * opts.box.coords}`,
    );
  const out: KeypointDetection[] = [];
  for (let i = 0; i < n; i++) {
    let cls = 0;
    let best = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < opts.classes; c++) {
      const s = scoreOf(scores[i * opts.classes + c]!, opts.score);
      if (s > best) {
        best = s;
        cls = c;
      }
    }
    if (!(best >= opts.threshold)) continue;
    const d = decodeAnchorBox(
      regressors,
      i * opts.box.coords,
      anchors[i]!,
      opts.box,
      opts.width,
      opts.height,
    );
    out.push({ cls, score: best, ...d });
  }
  return out;
}
