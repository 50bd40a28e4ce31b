/**
 * Axis-aligned boxes in the two forms detection uses: corners in pixels (x1, y1, x2, y2) — the form every
 * computation here works in — and the Ultralytics label form (cx, cy, w, h) normalised by the image size.
 * Pixel coordinates are continuous: a box covering pixel columns 3..5 inclusive is x1 = 3, x2 = 6.
 */

/** Corners in pixels, x2 ≥ x1 and y2 ≥ y1 for a proper box. */
export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** Centre and size, each divided by the image width (cx, w) or height (cy, h): the YOLO label form. */
export interface NormBox {
  cx: number;
  cy: number;
  w: number;
  h: number;
}

/** A ground-truth object: a class index and its box in pixels. */
export interface LabeledBox {
  cls: number;
  box: Box;
}

/** A detection: a labeled box with a confidence. */
export interface Detection extends LabeledBox {
  score: number;
}

export function boxWidth(b: Box): number {
  return Math.max(0, b.x2 - b.x1);
}

export function boxHeight(b: Box): number {
  return Math.max(0, b.y2 - b.y1);
}

/** Area in square pixels; 0 for an empty or inverted box. */
export function boxArea(b: Box): number {
  return boxWidth(b) * boxHeight(b);
}

/** Area of the overlap of two boxes. */
export function intersectionArea(a: Box, b: Box): number {
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const h = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Intersection over union; 0 when both boxes are empty (no overlap to speak of). */
export function iou(a: Box, b: Box): number {
  const inter = intersectionArea(a, b);
  if (inter === 0) return 0;
  return inter / (boxArea(a) + boxArea(b) - inter);
}

/** From the normalised YOLO form to corners in pixels of a width × height image. */
export function fromNormalized(n: NormBox, width: number, height: number): Box {
  return {
    x1: (n.cx - n.w / 2) * width,
    y1: (n.cy - n.h / 2) * height,
    x2: (n.cx + n.w / 2) * width,
    y2: (n.cy + n.h / 2) * height,
  };
}

/** From corners in pixels to the normalised YOLO form. */
export function toNormalized(b: Box, width: number, height: number): NormBox {
  return {
    cx: (b.x1 + b.x2) / 2 / width,
    cy: (b.y1 + b.y2) / 2 / height,
    w: (b.x2 - b.x1) / width,
    h: (b.y2 - b.y1) / height,
  };
}

/** From centre and size in pixels (the Ultralytics output) to corners. */
export function fromCenter(cx: number, cy: number, w: number, h: number): Box {
  return { x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2 };
}

/** From COCO's [x, y, width, height] in pixels to corners. */
export function fromXywh(x: number, y: number, w: number, h: number): Box {
  return { x1: x, y1: y, x2: x + w, y2: y + h };
}

/** The part of a box inside [0, width] × [0, height] (possibly empty). */
export function clipBox(b: Box, width: number, height: number): Box {
  return {
    x1: Math.min(Math.max(b.x1, 0), width),
    y1: Math.min(Math.max(b.y1, 0), height),
    x2: Math.min(Math.max(b.x2, 0), width),
    y2: Math.min(Math.max(b.y2, 0), height),
  };
}

/** A box mapped by x' = x·sx + dx, y' = y·sy + dy (sx, sy > 0). */
export function scaleBox(b: Box, sx: number, sy: number, dx: number, dy: number): Box {
  return { x1: b.x1 * sx + dx, y1: b.y1 * sy + dy, x2: b.x2 * sx + dx, y2: b.y2 * sy + dy };
}

/** The box mirrored left-right in an image `width` pixels wide. */
export function flipBoxX(b: Box, width: number): Box {
  return { x1: width - b.x2, y1: b.y1, x2: width - b.x1, y2: b.y2 };
}
