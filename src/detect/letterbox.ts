/**
 * Letterboxing: scale an image to fit a model's input without changing its aspect ratio and pad the rest, the way
 * Ultralytics prepares detector inputs; with the box transform into the padded image and its inverse back to the
 * original image (for detections the model returns).
 *
 * Images here are 8-bit, channels interleaved (the `Image8` of src/data/image.ts, H×W×C bytes): resampling bytes
 * is cheaper than floats and the result feeds `writeChw` to become the model's Float32 C×H×W input.
 */
import type { Image8 } from "../data/image.js";
import { type Box, clipBox, scaleBox } from "./boxes.js";

/** A rectangle of the source image in pixels (may be fractional). */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Bilinear resampling of `rect` of `src` to outW × outH (pixel centres at +0.5, as OpenCV's INTER_LINEAR; samples
 * beyond the source edge repeat the edge pixel).
 */
export function resample(src: Image8, rect: Rect, outW: number, outH: number): Image8 {
  const { width: W, height: H, channels: C, data } = src;
  const out = new Uint8Array(outW * outH * C);
  const fx = rect.w / outW;
  const fy = rect.h / outH;
  const x0s = new Int32Array(outW);
  const x1s = new Int32Array(outW);
  const wxs = new Float64Array(outW);
  for (let x = 0; x < outW; x++) {
    const sx = Math.min(Math.max(rect.x + (x + 0.5) * fx - 0.5, 0), W - 1);
    const x0 = Math.floor(sx);
    x0s[x] = x0;
    x1s[x] = Math.min(x0 + 1, W - 1);
    wxs[x] = sx - x0;
  }
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(Math.max(rect.y + (y + 0.5) * fy - 0.5, 0), H - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, H - 1);
    const wy = sy - y0;
    const r0 = y0 * W;
    const r1 = y1 * W;
    for (let x = 0; x < outW; x++) {
      const a = x0s[x]!;
      const b = x1s[x]!;
      const wx = wxs[x]!;
      for (let c = 0; c < C; c++) {
        const top = data[(r0 + a) * C + c]! * (1 - wx) + data[(r0 + b) * C + c]! * wx;
        const bot = data[(r1 + a) * C + c]! * (1 - wx) + data[(r1 + b) * C + c]! * wx;
        out[(y * outW + x) * C + c] = Math.round(top * (1 - wy) + bot * wy);
      }
    }
  }
  return { width: outW, height: outH, channels: C, data: out };
}

/** Where the source image lands in the letterboxed one: x' = x·scaleX + padX, y' = y·scaleY + padY. */
export interface LetterboxInfo {
  srcWidth: number;
  srcHeight: number;
  /** Size of the letterboxed image (the model input). */
  width: number;
  height: number;
  /** Size of the scaled source inside it. */
  innerWidth: number;
  innerHeight: number;
  /** innerWidth / srcWidth and innerHeight / srcHeight: equal up to the rounding of the inner size. */
  scaleX: number;
  scaleY: number;
  padX: number;
  padY: number;
}

/**
 * The geometry Ultralytics uses: one ratio r = min(width/srcWidth, height/srcHeight), the inner size rounded, the
 * padding split between the two sides (the odd pixel goes right/bottom).
 */
export function letterboxGeometry(
  srcWidth: number,
  srcHeight: number,
  width: number,
  height: number,
): LetterboxInfo {
  if (!(srcWidth > 0 && srcHeight > 0 && width > 0 && height > 0))
    throw new RangeError(
      `letterbox of ${srcWidth}×${srcHeight} to ${width}×${height}: sizes must be positive`,
    );
  const r = Math.min(width / srcWidth, height / srcHeight);
  const innerWidth = Math.max(1, Math.min(width, Math.round(srcWidth * r)));
  const innerHeight = Math.max(1, Math.min(height, Math.round(srcHeight * r)));
  const padX = Math.floor((width - innerWidth) / 2);
  const padY = Math.floor((height - innerHeight) / 2);
  return {
    srcWidth,
    srcHeight,
    width,
    height,
    innerWidth,
    innerHeight,
    scaleX: innerWidth / srcWidth,
    scaleY: innerHeight / srcHeight,
    padX,
    padY,
  };
}

/** The image scaled into a width × height canvas filled with `padValue` (114, Ultralytics' grey, by default). */
export function letterbox(
  img: Image8,
  width: number,
  height: number,
  padValue = 114,
): { image: Image8; info: LetterboxInfo } {
  const info = letterboxGeometry(img.width, img.height, width, height);
  const C = img.channels;
  const inner = resample(img, { x: 0, y: 0, w: img.width, h: img.height }, info.innerWidth, info.innerHeight);
  const data = new Uint8Array(width * height * C).fill(padValue);
  const rowBytes = info.innerWidth * C;
  for (let y = 0; y < info.innerHeight; y++) {
    const from = y * rowBytes;
    data.set(inner.data.subarray(from, from + rowBytes), ((y + info.padY) * width + info.padX) * C);
  }
  return { image: { width, height, channels: C, data }, info };
}

/** A box of the source image in the letterboxed image's pixels. */
export function toLetterbox(b: Box, info: LetterboxInfo): Box {
  return scaleBox(b, info.scaleX, info.scaleY, info.padX, info.padY);
}

/** A box of the letterboxed image (a detection) back in the source image's pixels, clipped to the source. */
export function fromLetterbox(b: Box, info: LetterboxInfo): Box {
  const back = scaleBox(
    b,
    1 / info.scaleX,
    1 / info.scaleY,
    -info.padX / info.scaleX,
    -info.padY / info.scaleY,
  );
  return clipBox(back, info.srcWidth, info.srcHeight);
}
