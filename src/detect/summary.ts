/**
 * What a detection set holds, in figures: images and boxes per split, how many boxes images carry, how large the
 * boxes are, and how often each class appears — to check a generated or downloaded set at a glance.
 */
import { boxHeight, boxWidth, type LabeledBox } from "./boxes.js";

/** Edges of the box-size bins in pixels (size = the box's longer side); the last bin is open-ended. */
export const SIZE_BINS: readonly number[] = [0, 8, 16, 24, 32, 40, 48, 64, 96, 128];

export interface SplitSummary {
  images: number;
  boxes: number;
  /** boxesPerImage[k]: images with exactly k boxes. */
  boxesPerImage: number[];
  /** Boxes by their longer side in pixels, one entry per bin of SIZE_BINS ("lo-hi" labels, hi exclusive). */
  sizeHistogram: { bin: string; count: number }[];
  /** Boxes of each class. */
  perClass: number[];
  /** Longer side of the smallest and largest box, in pixels (NaN without boxes). */
  minSize: number;
  maxSize: number;
}

export interface DetectionSummary {
  classNames: string[];
  splits: Record<string, SplitSummary>;
}

/** Figures of one split from each image's objects. */
export function summarizeSplit(
  images: readonly { objects: readonly LabeledBox[] }[],
  numClasses: number,
): SplitSummary {
  const boxesPerImage: number[] = [];
  const sizes = new Array<number>(SIZE_BINS.length).fill(0);
  const perClass = new Array<number>(numClasses).fill(0);
  let boxes = 0;
  let minSize = Number.POSITIVE_INFINITY;
  let maxSize = Number.NEGATIVE_INFINITY;
  for (const im of images) {
    const k = im.objects.length;
    while (boxesPerImage.length <= k) boxesPerImage.push(0);
    boxesPerImage[k]!++;
    boxes += k;
    for (const o of im.objects) {
      // to a thousandth of a pixel, so the rounding in label text read back does not move a box between bins
      const size = Math.round(Math.max(boxWidth(o.box), boxHeight(o.box)) * 1000) / 1000;
      minSize = Math.min(minSize, size);
      maxSize = Math.max(maxSize, size);
      let b = SIZE_BINS.length - 1;
      while (b > 0 && size < SIZE_BINS[b]!) b--;
      sizes[b]!++;
      if (o.cls >= 0 && o.cls < numClasses) perClass[o.cls]!++;
    }
  }
  return {
    images: images.length,
    boxes,
    boxesPerImage,
    sizeHistogram: SIZE_BINS.map((lo, b) => ({
      bin: b + 1 < SIZE_BINS.length ? `${lo}-${SIZE_BINS[b + 1]}` : `${lo}+`,
      count: sizes[b]!,
    })),
    perClass,
    minSize: boxes > 0 ? minSize : Number.NaN,
    maxSize: boxes > 0 ? maxSize : Number.NaN,
  };
}

/** The summary as text, one block per split. */
export function formatDetectionSummary(s: DetectionSummary): string {
  const lines: string[] = [];
  for (const [split, x] of Object.entries(s.splits)) {
    lines.push(
      `${split}: ${x.images} images, ${x.boxes} boxes (${(x.boxes / Math.max(1, x.images)).toFixed(2)} per image)`,
    );
    lines.push(`  boxes per image: ${x.boxesPerImage.map((n, k) => `${k}:${n}`).join("  ")}`);
    const shown = x.sizeHistogram.filter((h) => h.count > 0);
    lines.push(`  box size (longer side, px): ${shown.map((h) => `${h.bin}:${h.count}`).join("  ")}`);
    if (x.boxes > 0) lines.push(`  smallest ${fmt(x.minSize)} px, largest ${fmt(x.maxSize)} px`);
    lines.push(`  per class: ${x.perClass.map((n, c) => `${s.classNames[c] ?? c}:${n}`).join("  ")}`);
  }
  return lines.join("\n");
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
