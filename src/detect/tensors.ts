/**
 * A detection split decoded once into model-input pixels: every image letterboxed to the model's [C, H, W] (a no-op
 * for images already that size, as mnist-detect's), stored as bytes in CHW order, with its boxes in input pixels.
 * 20k 96×96 grey images take 184 MB, decoded in seconds, and no epoch decodes a PNG again.
 */
import type { Dataset } from "../data/dataset.js";
import { DataError } from "../data/errors.js";
import type { LabeledBox } from "./boxes.js";
import { type DetectionSet, loadImage } from "./dataset.js";
import { type LetterboxInfo, letterbox, toLetterbox } from "./letterbox.js";
import { encodeTargets, type TargetGrid, targetChannels } from "./targets.js";

export interface DetectionTensors {
  set: DetectionSet;
  inputShape: [number, number, number];
  /** length · C·H·W bytes, CHW per image. */
  pixels: Uint8Array;
  /** Boxes in input pixels, per image. */
  objects: LabeledBox[][];
  /** How each image was placed in the input (to map detections back to its pixels). */
  letterbox: LetterboxInfo[];
}

/** Decode and letterbox every image of `set` (at most `limit` of them, 0: all) to [C, H, W]. */
export function loadDetectionTensors(
  set: DetectionSet,
  inputShape: readonly number[],
  limit = 0,
): DetectionTensors {
  const [C, H, W] = inputShape as [number, number, number];
  const n = limit > 0 ? Math.min(limit, set.images.length) : set.images.length;
  const size = C * H * W;
  const pixels = new Uint8Array(n * size);
  const objects: LabeledBox[][] = [];
  const boxes: LetterboxInfo[] = [];
  for (let i = 0; i < n; i++) {
    const img = set.images[i]!;
    const raw = loadImage(img);
    if (raw.channels !== C && !(raw.channels === 3 && C === 1) && !(raw.channels === 1 && C === 3))
      throw new DataError(`image has ${raw.channels} channels, the model takes ${C}`, { file: img.file });
    const { image, info } = letterbox(raw, W, H);
    const base = i * size;
    for (let p = 0; p < H * W; p++) {
      const src = p * image.channels;
      if (C === 1) {
        // grey model, colour image: ITU-R 601 luma, as PIL's convert("L")
        pixels[base + p] =
          image.channels === 1
            ? image.data[src]!
            : Math.round(
                0.299 * image.data[src]! + 0.587 * image.data[src + 1]! + 0.114 * image.data[src + 2]!,
              );
      } else
        for (let c = 0; c < C; c++)
          pixels[base + c * H * W + p] = image.data[src + (image.channels === 1 ? 0 : c)]!;
    }
    objects.push(img.objects.map((o) => ({ cls: o.cls, box: toLetterbox(o.box, info) })));
    boxes.push(info);
  }
  return { set, inputShape: [C, H, W], pixels, objects, letterbox: boxes };
}

/**
 * The images as a `Dataset` (labels all 0), for what works on inputs alone: the shuffled loader, calibration of
 * activation ranges, the export's parity check. Statistics are those of the first 500 images.
 */
export function tensorsAsDataset(t: DetectionTensors): Dataset {
  const size = t.inputShape[0] * t.inputShape[1] * t.inputShape[2];
  const length = t.objects.length;
  let stats: { mean: number[]; std: number[] } | undefined;
  return {
    name: t.set.name,
    inputShape: t.inputShape,
    numClasses: t.set.classNames.length,
    length,
    classNames: t.set.classNames,
    stats: () => (stats ??= channelStats(t, Math.min(length, 500))),
    fill: (indices, x, y) => {
      for (let k = 0; k < indices.length; k++) {
        const from = indices[k]! * size;
        for (let e = 0; e < size; e++) x[k * size + e] = t.pixels[from + e]!;
        y[k] = 0n;
      }
    },
  };
}

/** Targets of the given images, one after the other ([n, classes + 5, rows, cols]). */
export function fillTargets(
  t: DetectionTensors,
  items: ArrayLike<number>,
  grid: TargetGrid,
  out: Float32Array,
): void {
  const per = targetChannels(grid) * grid.rows * grid.cols;
  for (let k = 0; k < items.length; k++) encodeTargets(t.objects[items[k]!]!, grid, out, k * per);
}

function channelStats(t: DetectionTensors, n: number): { mean: number[]; std: number[] } {
  const [C, H, W] = t.inputShape;
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < C; c++) {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const base = i * C * H * W + c * H * W;
      for (let p = 0; p < H * W; p++) {
        const v = t.pixels[base + p]!;
        s += v;
        s2 += v * v;
      }
    }
    const m = s / Math.max(1, n * H * W);
    mean.push(m);
    std.push(Math.sqrt(Math.max(0, s2 / Math.max(1, n * H * W) - m * m)));
  }
  return { mean, std };
}
