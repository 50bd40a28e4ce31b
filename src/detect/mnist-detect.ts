/**
 * `mnist-detect`: a small detection set made from MNIST, to train and test detectors on without downloading one.
 * Each 96×96 grey canvas holds 1–5 digits, each scaled so its longer side is 12–48 px, placed so no two digit
 * boxes overlap with IoU above 0.3 or cover more than half of each other, plus 0–3 pieces of clutter (digit fragments and pen strokes, kept off the
 * digits) that are not objects. Boxes are tight around the digit's nonzero pixels; classes are the digits 0–9.
 *
 * Every image draws from its own random stream, seeded by (seed, split, index), so the output is the same bytes
 * for the same seed on every machine, and image i does not depend on how many images come before it.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import { DataError } from "../data/errors.js";
import type { Image8 } from "../data/image.js";
import { openNamedDataset } from "../data/named.js";
import { mixSeed } from "../data/seed.js";
import { Rng } from "../util/rng.js";
import { type Box, boxArea, intersectionArea, iou, type LabeledBox, toNormalized } from "./boxes.js";
import { resample } from "./letterbox.js";
import { type DetectionSummary, summarizeSplit } from "./summary.js";

/** Where the digits come from: `count` grey images of size × size pixels with their labels. */
export interface DigitSource {
  count: number;
  size: number;
  pixels(i: number): Uint8Array;
  label(i: number): number;
}

export interface SceneConfig {
  canvas: number;
  minSize: number;
  maxSize: number;
  maxObjects: number;
  /** Largest IoU allowed between two digit boxes. */
  maxIou: number;
  /** Largest share of a digit's box another digit's box may cover (keeps small digits from hiding inside big ones). */
  maxCover: number;
  /** Clutter pieces per image are drawn from 0..maxClutter. */
  maxClutter: number;
}

export const DEFAULT_SCENE: SceneConfig = {
  canvas: 96,
  minSize: 12,
  maxSize: 48,
  maxObjects: 5,
  maxIou: 0.3,
  maxCover: 0.5,
  maxClutter: 3,
};

/** Position tries for one digit before it is left out (the canvas is too full for it). */
const PLACE_TRIES = 30;
const SPLIT_TAG = { train: 11, val: 12 } as const;

/** The tight box (in pixels, x2/y2 exclusive) of the nonzero pixels of a w × h grey image; undefined if blank. */
export function inkBox(px: Uint8Array, w: number, h: number): Box | undefined {
  let x1 = w;
  let y1 = h;
  let x2 = -1;
  let y2 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (px[y * w + x] === 0) continue;
      if (x < x1) x1 = x;
      if (x > x2) x2 = x;
      if (y < y1) y1 = y;
      if (y > y2) y2 = y;
    }
  }
  return x2 < 0 ? undefined : { x1, y1, x2: x2 + 1, y2: y2 + 1 };
}

/** Draw `patch` onto the canvas at (x, y), keeping the brighter pixel (digits are light on black). */
function stamp(canvas: Image8, patch: Image8, x: number, y: number): void {
  const W = canvas.width;
  for (let r = 0; r < patch.height; r++) {
    for (let c = 0; c < patch.width; c++) {
      const v = patch.data[r * patch.width + c]!;
      const at = (y + r) * W + x + c;
      if (v > canvas.data[at]!) canvas.data[at] = v;
    }
  }
}

/** A digit's inked part, scaled so its longer side is `size` pixels, trimmed to its own nonzero pixels. */
function digitPatch(src: DigitSource, i: number, size: number): Image8 | undefined {
  const s = src.size;
  const px = src.pixels(i);
  const ink = inkBox(px, s, s);
  if (!ink) return undefined;
  const bw = ink.x2 - ink.x1;
  const bh = ink.y2 - ink.y1;
  const f = size / Math.max(bw, bh);
  const img: Image8 = { width: s, height: s, channels: 1, data: px };
  const w = Math.max(1, Math.round(bw * f));
  const h = Math.max(1, Math.round(bh * f));
  return trim(resample(img, { x: ink.x1, y: ink.y1, w: bw, h: bh }, w, h));
}

function trim(p: Image8): Image8 | undefined {
  const b = inkBox(p.data, p.width, p.height);
  if (!b) return undefined;
  if (b.x1 === 0 && b.y1 === 0 && b.x2 === p.width && b.y2 === p.height) return p;
  return crop(p, b);
}

function crop(p: Image8, b: Box): Image8 {
  const w = b.x2 - b.x1;
  const h = b.y2 - b.y1;
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++)
    data.set(p.data.subarray((b.y1 + y) * p.width + b.x1, (b.y1 + y) * p.width + b.x2), y * w);
  return { width: w, height: h, channels: 1, data };
}

/** A fragment of a digit (a window of 30–50% of its inked box) at 5–10 px, or a short pen stroke. */
function clutterPatch(src: DigitSource, rng: Rng): Image8 | undefined {
  if (rng.next() < 0.5) {
    const i = rng.int(src.count);
    const px = src.pixels(i);
    const ink = inkBox(px, src.size, src.size);
    if (!ink) return undefined;
    const fw = (ink.x2 - ink.x1) * rng.uniform(0.3, 0.5);
    const fh = (ink.y2 - ink.y1) * rng.uniform(0.3, 0.5);
    const rect = { x: rng.uniform(ink.x1, ink.x2 - fw), y: rng.uniform(ink.y1, ink.y2 - fh), w: fw, h: fh };
    const f = rng.uniform(5, 10) / Math.max(fw, fh);
    const img: Image8 = { width: src.size, height: src.size, channels: 1, data: px };
    return trim(resample(img, rect, Math.max(1, Math.round(fw * f)), Math.max(1, Math.round(fh * f))));
  }
  const len = rng.uniform(5, 12);
  const angle = rng.uniform(0, Math.PI);
  const thick = 0.6 + rng.next() * 0.8;
  const value = 100 + rng.int(156);
  const dx = Math.cos(angle) * len;
  const dy = Math.sin(angle) * len;
  const w = Math.ceil(Math.abs(dx) + 2 * thick) + 1;
  const h = Math.ceil(Math.abs(dy) + 2 * thick) + 1;
  const data = new Uint8Array(w * h);
  const x0 = dx >= 0 ? thick : w - 1 - thick;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // distance from the pixel centre to the segment from (x0, thick) to (x0 + dx, thick + dy)
      const px = x + 0.5 - x0;
      const py = y + 0.5 - thick;
      const t = Math.min(1, Math.max(0, (px * dx + py * dy) / (len * len)));
      const d = Math.hypot(px - t * dx, py - t * dy);
      if (d <= thick) data[y * w + x] = value;
    }
  }
  return trim({ width: w, height: h, channels: 1, data });
}

function tooClose(a: Box, b: Box, cfg: SceneConfig): boolean {
  const cover = intersectionArea(a, b) / Math.min(boxArea(a), boxArea(b));
  return iou(a, b) > cfg.maxIou || cover > cfg.maxCover;
}

/** One canvas with its digit boxes, drawn from `rng`. */
export function renderScene(
  src: DigitSource,
  rng: Rng,
  cfg: SceneConfig = DEFAULT_SCENE,
): {
  image: Image8;
  objects: LabeledBox[];
} {
  const N = cfg.canvas;
  const canvas: Image8 = { width: N, height: N, channels: 1, data: new Uint8Array(N * N) };
  const objects: LabeledBox[] = [];
  const wanted = 1 + rng.int(cfg.maxObjects);
  for (let k = 0; k < wanted; k++) {
    const i = rng.int(src.count);
    const patch = digitPatch(src, i, rng.uniform(cfg.minSize, cfg.maxSize));
    if (!patch) continue;
    for (let t = 0; t < PLACE_TRIES; t++) {
      const x = rng.int(N - patch.width + 1);
      const y = rng.int(N - patch.height + 1);
      const box = { x1: x, y1: y, x2: x + patch.width, y2: y + patch.height };
      if (objects.some((o) => tooClose(o.box, box, cfg))) continue;
      stamp(canvas, patch, x, y);
      objects.push({ cls: src.label(i), box });
      break;
    }
  }
  const clutter = rng.int(cfg.maxClutter + 1);
  for (let k = 0; k < clutter; k++) {
    const patch = clutterPatch(src, rng);
    if (!patch || patch.width > N || patch.height > N) continue;
    for (let t = 0; t < PLACE_TRIES; t++) {
      const x = rng.int(N - patch.width + 1);
      const y = rng.int(N - patch.height + 1);
      // a pixel's margin around every digit, so clutter never changes a digit's tight box
      const area = { x1: x - 1, y1: y - 1, x2: x + patch.width + 1, y2: y + patch.height + 1 };
      if (objects.some((o) => intersectionArea(o.box, area) > 0)) continue;
      stamp(canvas, patch, x, y);
      break;
    }
  }
  return { image: canvas, objects };
}

/** One YOLO label line per object, normalised to the canvas, six decimals as Ultralytics writes them. */
export function yoloLabelText(objects: readonly LabeledBox[], width: number, height: number): string {
  return objects
    .map((o) => {
      const n = toNormalized(o.box, width, height);
      return `${o.cls} ${n.cx.toFixed(6)} ${n.cy.toFixed(6)} ${n.w.toFixed(6)} ${n.h.toFixed(6)}\n`;
    })
    .join("");
}

export interface MnistDetectOptions {
  /** Output folder (created; must be empty unless `overwrite`). */
  out: string;
  train?: number;
  val?: number;
  seed?: number;
  /** Folder searched first for MNIST (see openNamedDataset); MNIST is downloaded to the cache when not found. */
  dataDir?: string;
  download?: boolean;
  /** Replace an earlier set in `out` (its images/, labels/ and data.yaml). */
  overwrite?: boolean;
  scene?: Partial<SceneConfig>;
  /** Called after each image written. */
  onImage?: (done: number, total: number) => void;
}

export const MNIST_DETECT_CLASSES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/** Write the set in the YOLO layout (images/, labels/, data.yaml) and return its summary. */
export async function generateMnistDetect(opts: MnistDetectOptions): Promise<DetectionSummary> {
  const counts = { train: opts.train ?? 20000, val: opts.val ?? 2000 };
  const seed = opts.seed ?? 0;
  const cfg = { ...DEFAULT_SCENE, ...opts.scene };
  prepareOut(opts.out, !!opts.overwrite);
  const summary: DetectionSummary = { classNames: MNIST_DETECT_CLASSES, splits: {} };
  const total = counts.train + counts.val;
  let done = 0;
  for (const split of ["train", "val"] as const) {
    const mnist = await openNamedDataset("mnist", {
      split: split === "train" ? "train" : "test",
      ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
      ...(opts.download !== undefined ? { download: opts.download } : {}),
    });
    const size = mnist.inputShape[2]!;
    const data = mnist.data as Uint8Array;
    const src: DigitSource = {
      count: mnist.length,
      size,
      pixels: (i) => data.subarray(i * size * size, (i + 1) * size * size),
      label: (i) => mnist.labels[i]!,
    };
    const imgDir = join(opts.out, "images", split);
    const labDir = join(opts.out, "labels", split);
    mkdirSync(imgDir, { recursive: true });
    mkdirSync(labDir, { recursive: true });
    const all: { objects: LabeledBox[] }[] = [];
    const nameWidth = Math.max(6, String(counts[split] - 1).length);
    for (let i = 0; i < counts[split]; i++) {
      const rng = new Rng(mixSeed(seed, SPLIT_TAG[split], i));
      const { image, objects } = renderScene(src, rng, cfg);
      const name = String(i).padStart(nameWidth, "0");
      writeFileSync(join(imgDir, `${name}.png`), encodePng({ ...image, depth: 8 }));
      writeFileSync(join(labDir, `${name}.txt`), yoloLabelText(objects, image.width, image.height));
      all.push({ objects });
      opts.onImage?.(++done, total);
    }
    summary.splits[split] = summarizeSplit(all, MNIST_DETECT_CLASSES.length);
  }
  writeFileSync(join(opts.out, "data.yaml"), dataYamlText(MNIST_DETECT_CLASSES, seed));
  return summary;
}

/** The data.yaml: no `path:` key, so the set is found relative to the file wherever the folder is moved. */
function dataYamlText(names: readonly string[], seed: number): string {
  return [
    `# mnist-detect (seed ${seed}): MNIST digits on 96x96 canvases, made by qat data synth mnist-detect`,
    "train: images/train",
    "val: images/val",
    `nc: ${names.length}`,
    `names: [${names.map((n) => `'${n}'`).join(", ")}]`,
    "",
  ].join("\n");
}

function prepareOut(out: string, overwrite: boolean): void {
  if (existsSync(out) && readdirSync(out).length > 0) {
    if (!overwrite)
      throw new DataError("the output folder is not empty; choose another, or overwrite the set in it", {
        file: out,
      });
    for (const p of ["images", "labels", "data.yaml"]) rmSync(join(out, p), { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
}
