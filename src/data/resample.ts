/**
 * Resampling an 8-bit image region to a requested size, as float values 0–255 (no rounding back to 8 bits, so a
 * model sees the interpolated values). Downscaling widens the triangle filter by the scale factor (antialiased
 * bilinear), so a 512-pixel photo shrunk to 128 is averaged, not aliased; upscaling is plain bilinear. Pixel
 * centres sit at +0.5 (the half-pixel convention of PIL, OpenCV and ONNX Resize's default).
 *
 * src/detect/letterbox.ts letterboxes with boxes above this layer; the pixel work is the same and could use this.
 */
import type { Image8 } from "./image.js";

/** A region of the source image in pixels (may be fractional). */
export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Where the resampled image landed in the output (letterbox offsets and scale; stretch has pad 0). */
export interface Placement {
  /** Output pixels per source pixel, horizontally and vertically. */
  scaleX: number;
  scaleY: number;
  /** Output columns/rows of padding before the image. */
  padX: number;
  padY: number;
  /** Size of the resampled image inside the output. */
  width: number;
  height: number;
}

export type Fit = "stretch" | "letterbox";

export interface ResampleOptions {
  /** "stretch" resizes to exactly H×W; "letterbox" keeps the aspect ratio and pads (centred). */
  fit?: Fit;
  /** Value of the letterbox padding, 0–255 (default 114, the grey YOLO-family models are trained with). */
  padValue?: number;
  /** Mirror horizontally. */
  flip?: boolean;
}

/** One axis's filter: for each output index, the first source index and its weights (sum 1). */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  stride: number;
}

function taps(srcLen: number, from: number, span: number, outLen: number): Taps {
  const scale = span / outLen; // source pixels per output pixel
  const support = Math.max(1, scale);
  const stride = Math.ceil(2 * support) + 2;
  const start = new Int32Array(outLen);
  const count = new Int32Array(outLen);
  const weights = new Float32Array(outLen * stride);
  for (let o = 0; o < outLen; o++) {
    const centre = from + (o + 0.5) * scale; // in source coordinates, pixel i covers [i, i+1)
    const lo = Math.max(0, Math.floor(centre - support - 0.5));
    const hi = Math.min(srcLen - 1, Math.ceil(centre + support - 0.5));
    let sum = 0;
    let n = 0;
    for (let i = lo; i <= hi && n < stride; i++, n++) {
      const w = Math.max(0, 1 - Math.abs(i + 0.5 - centre) / support);
      weights[o * stride + n] = w;
      sum += w;
    }
    if (sum === 0) {
      // the region lies outside the image: take the nearest edge pixel
      const i = Math.min(srcLen - 1, Math.max(0, Math.floor(centre)));
      start[o] = i;
      count[o] = 1;
      weights[o * stride] = 1;
      continue;
    }
    for (let k = 0; k < n; k++) weights[o * stride + k]! /= sum;
    start[o] = lo;
    count[o] = n;
  }
  return { start, count, weights, stride };
}

/**
 * Resample `region` of `img` into an outH×outW×C float image (C = img.channels, interleaved). Returns the pixels
 * and where the image was placed (letterbox padding).
 */
export function resample(
  img: Image8,
  region: Region,
  outH: number,
  outW: number,
  opts: ResampleOptions = {},
): { data: Float32Array; placement: Placement } {
  const c = img.channels;
  let w = outW;
  let h = outH;
  if (opts.fit === "letterbox") {
    const s = Math.min(outW / region.width, outH / region.height);
    w = Math.max(1, Math.min(outW, Math.round(region.width * s)));
    h = Math.max(1, Math.min(outH, Math.round(region.height * s)));
  }
  const padX = Math.floor((outW - w) / 2);
  const padY = Math.floor((outH - h) / 2);
  const tx = taps(img.width, region.x, region.width, w);
  const ty = taps(img.height, region.y, region.height, h);
  // horizontal pass over the rows the vertical pass needs, then the vertical pass
  const rowLo = ty.start[0]!;
  const rowHi = ty.start[h - 1]! + ty.count[h - 1]!;
  const tmp = new Float32Array((rowHi - rowLo) * w * c);
  for (let r = rowLo; r < rowHi; r++) {
    const srcRow = r * img.width * c;
    const dstRow = (r - rowLo) * w * c;
    for (let o = 0; o < w; o++) {
      const s0 = tx.start[o]!;
      const base = o * tx.stride;
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < tx.count[o]!; k++)
          acc += tx.weights[base + k]! * img.data[srcRow + (s0 + k) * c + ch]!;
        tmp[dstRow + o * c + ch] = acc;
      }
    }
  }
  const data = new Float32Array(outH * outW * c).fill(opts.padValue ?? 114);
  for (let o = 0; o < h; o++) {
    const s0 = ty.start[o]! - rowLo;
    const base = o * ty.stride;
    for (let x = 0; x < w; x++) {
      const dx = opts.flip ? w - 1 - x : x;
      const dst = ((o + padY) * outW + dx + padX) * c;
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < ty.count[o]!; k++)
          acc += ty.weights[base + k]! * tmp[((s0 + k) * w + x) * c + ch]!;
        data[dst + ch] = acc;
      }
    }
  }
  return {
    data,
    placement: { scaleX: w / region.width, scaleY: h / region.height, padX, padY, width: w, height: h },
  };
}

/**
 * Write an H×W×Cin interleaved float image as `channels` channels in CHW or HWC order at `out[at…]`: grey is
 * replicated to RGB, RGB becomes grey by the ITU-R BT.601 luma weights (as `writeChw`).
 */
export function writeLayout(
  src: Float32Array,
  cin: 1 | 3,
  n: number,
  channels: 1 | 3,
  layout: "nchw" | "nhwc",
  out: Float32Array,
  at: number,
): void {
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < channels; c++) {
      let v: number;
      if (cin === channels) v = src[p * cin + c]!;
      else if (cin === 1) v = src[p]!;
      else v = 0.299 * src[3 * p]! + 0.587 * src[3 * p + 1]! + 0.114 * src[3 * p + 2]!;
      out[at + (layout === "nchw" ? c * n + p : p * channels + c)] = v;
    }
  }
}
