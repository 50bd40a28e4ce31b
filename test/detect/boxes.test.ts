import { describe, expect, it } from "vitest";
import type { Image8 } from "../../src/data/image.js";
import { augmentDetection, cropObjects, flipHorizontal, scaleCrop } from "../../src/detect/augment.js";
import {
  type Box,
  clipBox,
  flipBoxX,
  fromCenter,
  fromNormalized,
  fromXywh,
  iou,
  toNormalized,
} from "../../src/detect/boxes.js";
import { fromLetterbox, letterbox, letterboxGeometry, toLetterbox } from "../../src/detect/letterbox.js";
import { inkBox } from "../../src/detect/mnist-detect.js";
import { Rng } from "../../src/util/rng.js";

const close = (a: Box, b: Box, eps = 1e-9) =>
  [a.x1 - b.x1, a.y1 - b.y1, a.x2 - b.x2, a.y2 - b.y2].every((d) => Math.abs(d) <= eps);

/** A black grey image with the given boxes filled white (integer corners). */
function paint(w: number, h: number, boxes: Box[]): Image8 {
  const data = new Uint8Array(w * h);
  for (const b of boxes)
    for (let y = b.y1; y < b.y2; y++) for (let x = b.x1; x < b.x2; x++) data[y * w + x] = 255;
  return { width: w, height: h, channels: 1, data };
}

describe("boxes", () => {
  it("computes IoU", () => {
    const a = { x1: 0, y1: 0, x2: 10, y2: 10 };
    expect(iou(a, a)).toBe(1);
    expect(iou(a, { x1: 5, y1: 0, x2: 15, y2: 10 })).toBeCloseTo(50 / 150, 12);
    expect(iou(a, { x1: 10, y1: 0, x2: 20, y2: 10 })).toBe(0); // touching edges do not overlap
    expect(iou(a, { x1: 2, y1: 2, x2: 4, y2: 4 })).toBeCloseTo(4 / 100, 12);
    expect(iou({ x1: 0, y1: 0, x2: 0, y2: 0 }, { x1: 0, y1: 0, x2: 0, y2: 0 })).toBe(0);
  });

  it("converts between corner, centre, COCO and normalised forms", () => {
    const b = { x1: 10, y1: 20, x2: 40, y2: 30 };
    const n = toNormalized(b, 100, 50);
    expect(n).toEqual({ cx: 0.25, cy: 0.5, w: 0.3, h: 0.2 });
    expect(close(fromNormalized(n, 100, 50), b)).toBe(true);
    expect(fromCenter(25, 25, 30, 10)).toEqual(b);
    expect(fromXywh(10, 20, 30, 10)).toEqual(b);
    expect(clipBox({ x1: -5, y1: 3, x2: 120, y2: 60 }, 100, 50)).toEqual({ x1: 0, y1: 3, x2: 100, y2: 50 });
    expect(flipBoxX(b, 100)).toEqual({ x1: 60, y1: 20, x2: 90, y2: 30 });
  });
});

describe("letterbox", () => {
  it("fits a wide image with bars above and below, and maps boxes there and back", () => {
    const info = letterboxGeometry(200, 100, 64, 64);
    expect(info).toMatchObject({
      innerWidth: 64,
      innerHeight: 32,
      padX: 0,
      padY: 16,
      scaleX: 0.32,
      scaleY: 0.32,
    });
    const b = { x1: 50, y1: 25, x2: 150, y2: 75 };
    const inside = toLetterbox(b, info);
    expect(close(inside, { x1: 16, y1: 24, x2: 48, y2: 40 })).toBe(true);
    expect(close(fromLetterbox(inside, info), b)).toBe(true);
    // a detection reaching into the padding comes back clipped to the source image
    expect(fromLetterbox({ x1: 0, y1: 0, x2: 64, y2: 64 }, info)).toEqual({ x1: 0, y1: 0, x2: 200, y2: 100 });
  });

  it("puts the odd padding pixel on the right of a tall image", () => {
    const info = letterboxGeometry(30, 100, 64, 64);
    expect(info.innerWidth).toBe(19); // round(30 · 0.64) = 19
    expect(info.padX).toBe(22); // 45 columns of padding: 22 left, 23 right
    expect(info.padY).toBe(0);
  });

  it("draws the scaled image inside grey padding, where the transformed box says it is", () => {
    const src = paint(200, 100, [{ x1: 50, y1: 25, x2: 150, y2: 75 }]);
    const { image, info } = letterbox(src, 64, 64);
    expect(image.width).toBe(64);
    expect(image.data[0]).toBe(114); // padding
    expect(image.data[20 * 64 + 5]).toBe(0); // inside the picture, outside the rectangle
    const b = toLetterbox({ x1: 50, y1: 25, x2: 150, y2: 75 }, info);
    // the white block ends where the box does (within the half pixel bilinear blurs at each edge)
    const lit = { x1: 64, y1: 64, x2: 0, y2: 0 };
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 64; x++)
        if (image.data[y * 64 + x]! > 127) {
          lit.x1 = Math.min(lit.x1, x);
          lit.y1 = Math.min(lit.y1, y);
          lit.x2 = Math.max(lit.x2, x + 1);
          lit.y2 = Math.max(lit.y2, y + 1);
        }
    expect(close(lit, b, 1)).toBe(true);
  });
});

describe("augmentation", () => {
  const boxes = [
    { x1: 4, y1: 6, x2: 20, y2: 30 },
    { x1: 40, y1: 40, x2: 60, y2: 58 },
  ];
  const sample = { image: paint(64, 64, boxes), objects: boxes.map((box, cls) => ({ cls, box })) };

  it("flips the pixels and the boxes together", () => {
    const f = flipHorizontal(sample);
    for (const o of f.objects) {
      const b = o.box;
      expect(f.image.data[b.y1 * 64 + b.x1]).toBe(255);
      expect(f.image.data[(b.y2 - 1) * 64 + b.x2 - 1]).toBe(255);
      expect(f.image.data[b.y1 * 64 + b.x1 - 1]).toBe(0);
    }
    expect(f.objects[0]!.box).toEqual({ x1: 44, y1: 6, x2: 60, y2: 30 });
    expect(flipHorizontal(f).image.data).toEqual(sample.image.data);
  });

  it("clips boxes cut by the crop and drops those mostly outside", () => {
    const objs = [
      { cls: 0, box: { x1: 0, y1: 0, x2: 10, y2: 10 } }, // 40% inside [6,32]²: dropped
      { cls: 1, box: { x1: 4, y1: 10, x2: 14, y2: 20 } }, // 80% inside: clipped to x1 = 6
      { cls: 2, box: { x1: 40, y1: 40, x2: 50, y2: 50 } }, // outside: dropped
    ];
    const kept = cropObjects(objs, { x: 6, y: 6, w: 26, h: 26 }, 52, 52, 0.5);
    expect(kept).toHaveLength(1);
    expect(kept[0]!.cls).toBe(1);
    // clipped to [6,14]×[10,20], then shifted by −6 and scaled ×2
    expect(close(kept[0]!.box, { x1: 0, y1: 8, x2: 16, y2: 28 })).toBe(true);
  });

  it("keeps every box on its pixels through random crops and flips", () => {
    for (let seed = 0; seed < 40; seed++) {
      const out = augmentDetection(sample, new Rng(seed), {
        scaleCrop: { minScale: 0.5 },
        cropProbability: 0.8,
      });
      for (const o of out.objects) {
        // the ink around the box (3 px margin, so a box too small shows too), thresholded, ends where the box does
        const b = o.box;
        const x1 = Math.max(0, Math.floor(b.x1) - 3);
        const y1 = Math.max(0, Math.floor(b.y1) - 3);
        const w = Math.min(64, Math.ceil(b.x2) + 3) - x1;
        const h = Math.min(64, Math.ceil(b.y2) + 3) - y1;
        const region = new Uint8Array(w * h);
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++)
            region[y * w + x] = out.image.data[(y1 + y) * 64 + x1 + x]! > 127 ? 1 : 0;
        const ink = inkBox(region, w, h)!;
        expect(close({ x1: ink.x1 + x1, y1: ink.y1 + y1, x2: ink.x2 + x1, y2: ink.y2 + y1 }, b, 1.01)).toBe(
          true,
        );
      }
    }
  });

  it("is a function of the seed", () => {
    const a = scaleCrop(sample, new Rng(7));
    const b = scaleCrop(sample, new Rng(7));
    const c = scaleCrop(sample, new Rng(8));
    expect(a.image.data).toEqual(b.image.data);
    expect(a.objects).toEqual(b.objects);
    expect(a.rect).not.toEqual(c.rect);
  });
});
