/**
 * Non-maximum suppression: of overlapping detections of the same class, keep the highest-scoring one. Greedy, in
 * score order (stable on ties), as torchvision's batched_nms and Ultralytics' post-processing do.
 */
import { type Detection, iou } from "./boxes.js";

export interface NmsOptions {
  /** A detection is suppressed by a kept one of the same class overlapping it with IoU above this (default 0.45). */
  iouThreshold?: number;
  /** Detections scoring below this are dropped first (default 0.25). */
  scoreThreshold?: number;
  /** At most this many are returned, best first (default 300). */
  maxDetections?: number;
  /** Suppress across classes too (default false: class-aware). */
  agnostic?: boolean;
}

/** The detections NMS keeps, sorted by score, highest first. */
export function nms(dets: readonly Detection[], opts: NmsOptions = {}): Detection[] {
  const iouThreshold = opts.iouThreshold ?? 0.45;
  const scoreThreshold = opts.scoreThreshold ?? 0.25;
  const maxDetections = opts.maxDetections ?? 300;
  const order = dets
    .map((d, i) => ({ d, i }))
    .filter(({ d }) => d.score >= scoreThreshold)
    .sort((a, b) => b.d.score - a.d.score || a.i - b.i);
  const kept: Detection[] = [];
  // kept boxes per class, so a class-aware pass compares only within the class
  const byClass = new Map<number, Detection[]>();
  for (const { d } of order) {
    if (kept.length >= maxDetections) break;
    const key = opts.agnostic ? -1 : d.cls;
    const same = byClass.get(key) ?? [];
    if (same.some((k) => iou(k.box, d.box) > iouThreshold)) continue;
    same.push(d);
    byClass.set(key, same);
    kept.push(d);
  }
  return kept;
}
