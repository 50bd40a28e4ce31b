import { convertIndexedToRgb, decode as decodePng } from "fast-png";
import jpeg from "jpeg-js";
import { DataError } from "./errors.js";
import { checkPixels, DEFAULT_MAX_PIXELS } from "./limits.js";

/** An 8-bit image, channels interleaved (row-major H×W×C), C = 1 (gray) or 3 (RGB). */
export interface Image8 {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/** What a file's header says, read without decoding the pixels. */
export interface ImageHeader {
  format: "png" | "jpeg";
  width: number;
  height: number;
  /** 1 for grayscale (with or without alpha), 3 for colour. */
  channels: 1 | 3;
}

const PNG_SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && PNG_SIG.every((v, i) => b[i] === v);
}

export function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

/**
 * Width, height and colour of a PNG (its IHDR chunk) or JPEG (its SOF segment) from the first bytes of the file.
 * Returns undefined when `head` ends before the answer (read more of the file and ask again).
 */
export function readImageHeader(head: Uint8Array, path: string): ImageHeader | undefined {
  if (isPng(head)) {
    if (head.length < 26) return undefined;
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const colorType = head[25]!;
    return {
      format: "png",
      width: dv.getUint32(16),
      height: dv.getUint32(20),
      channels: colorType === 0 || colorType === 4 ? 1 : 3,
    };
  }
  if (isJpeg(head)) {
    let p = 2;
    while (p + 4 <= head.length) {
      if (head[p] !== 0xff)
        throw new DataError("corrupt JPEG: segment marker expected", { file: path, offset: p });
      const marker = head[p + 1]!;
      if (marker === 0xff) {
        p++;
        continue;
      }
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        p += 2;
        continue;
      }
      const len = (head[p + 2]! << 8) | head[p + 3]!;
      const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
      if (isSof) {
        if (p + 10 > head.length) return undefined;
        const height = (head[p + 5]! << 8) | head[p + 6]!;
        const width = (head[p + 7]! << 8) | head[p + 8]!;
        return { format: "jpeg", width, height, channels: head[p + 9] === 1 ? 1 : 3 };
      }
      if (marker === 0xd9 || marker === 0xda) break; // end of image / start of scan before any frame header
      p += 2 + len;
    }
    return p + 4 > head.length ? undefined : notImage(path, "JPEG without a frame header");
  }
  return notImage(path, "neither PNG nor JPEG (by its first bytes)");
}

function notImage(path: string, what: string): never {
  throw new DataError(`unreadable image: ${what}; convert it to PNG or JPEG, or remove it`, { file: path });
}

/**
 * Decode a PNG or JPEG file's bytes to 8 bits per channel (16-bit PNG samples are scaled to 0–255). The header's
 * size is checked against `maxPixels` first: a small file declaring a huge image is refused before decoding.
 */
export function decodeImage(bytes: Uint8Array, path: string, maxPixels = DEFAULT_MAX_PIXELS): Image8 {
  const head = readImageHeader(bytes, path);
  if (!head)
    throw new DataError("unreadable image: the file ends inside its header; replace it", { file: path });
  checkPixels(head.width, head.height, path, maxPixels);
  try {
    if (isPng(bytes)) return fromPng(bytes);
    if (isJpeg(bytes)) return fromJpeg(bytes, maxPixels);
  } catch (e) {
    throw new DataError(
      `unreadable image (${(e as Error).message}); the file is damaged: replace or remove it`,
      { file: path },
    );
  }
  return notImage(path, "neither PNG nor JPEG (by its first bytes)");
}

function fromPng(bytes: Uint8Array): Image8 {
  const png = decodePng(bytes);
  const { width, height, depth } = png;
  const n = width * height;
  let src: ArrayLike<number>;
  let ch: number;
  let max: number;
  if (png.palette) {
    src = convertIndexedToRgb(png);
    ch = png.palette[0]?.length ?? 3;
    max = 255;
  } else if (depth < 8) {
    src = unpackBits(png.data as Uint8Array, width, height, png.channels, depth);
    ch = png.channels;
    max = (1 << depth) - 1;
  } else {
    src = png.data;
    ch = png.channels;
    max = depth === 16 ? 65535 : 255;
  }
  // drop alpha: gray+alpha → gray, RGBA → RGB
  const outCh: 1 | 3 = ch <= 2 ? 1 : 3;
  const data = new Uint8Array(n * outCh);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < outCh; c++) {
      const v = src[p * ch + c]!;
      data[p * outCh + c] = max === 255 ? v : Math.round((v * 255) / max);
    }
  }
  return { width, height, channels: outCh, data };
}

function unpackBits(packed: Uint8Array, w: number, h: number, ch: number, depth: number): Uint8Array {
  const out = new Uint8Array(w * h * ch);
  const lineBytes = Math.ceil((w * ch * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < h; y++) {
    for (let i = 0; i < w * ch; i++) {
      const bit = i * depth;
      const byte = packed[y * lineBytes + (bit >> 3)]!;
      out[y * w * ch + i] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function fromJpeg(bytes: Uint8Array, maxPixels: number): Image8 {
  // jpeg-js checks its own limits too (frame size, memory); set them from ours so neither is looser
  const img = jpeg.decode(bytes, {
    useTArray: true,
    formatAsRGBA: false,
    tolerantDecoding: false,
    maxResolutionInMP: maxPixels / 1e6,
    maxMemoryUsageInMB: Math.ceil((maxPixels * 4) / 2 ** 20) + 64,
  });
  const n = img.width * img.height;
  const ch = img.data.length / n;
  if (ch === 1 || ch === 3) return { width: img.width, height: img.height, channels: ch, data: img.data };
  throw new Error(`${ch} colour components are not supported (gray or RGB JPEG only)`);
}

/**
 * Write an 8-bit H×W×C image as C×H×W float32 values (0–255) with `channels` channels: grey is replicated to RGB,
 * RGB becomes grey by the ITU-R BT.601 luma weights.
 */
export function writeChw(img: Image8, channels: 1 | 3, out: Float32Array, at: number): void {
  const n = img.width * img.height;
  const d = img.data;
  if (img.channels === channels) {
    for (let c = 0; c < channels; c++) {
      const plane = at + c * n;
      for (let p = 0; p < n; p++) out[plane + p] = d[p * channels + c]!;
    }
  } else if (channels === 3) {
    for (let p = 0; p < n; p++) out[at + p] = out[at + n + p] = out[at + 2 * n + p] = d[p]!;
  } else {
    for (let p = 0; p < n; p++) {
      out[at + p] = Math.round(0.299 * d[3 * p]! + 0.587 * d[3 * p + 1]! + 0.114 * d[3 * p + 2]!);
    }
  }
}
