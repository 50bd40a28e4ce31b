/**
 * Weighted NMS (MediaPipe's "WEIGHTED" overlap handling, BlazeFace's tie resolution): instead of dropping the boxes
 * a kept detection suppresses, its box (and keypoints) become the score-weighted mean of it and them, which steadies
 * the box of a face many anchors fire on. The score stays the highest one's.
 */

import type { KeypointDetection } from "./anchors.js";
import { iou } from "./boxes.js";
import type { NmsOptions } from "./nms.js";

/** Detections merged cluster by cluster, in score order (stable on ties). */
export function weightedNms(dets: readonly KeypointDetection[], opts: NmsOptions = {}): KeypointDetection[] {
  const iouThreshold = opts.iouThreshold ?? 0.45;
  const maxDetections = opts.maxDetections ?? 300;
  let rest = dets
    .map((d, i) => ({ d, i }))
    .filter(({ d }) => d.score >= (opts.scoreThreshold ?? 0.25))
    .sort((a, b) => b.d.score - a.d.score || a.i - b.i)
    .map(({ d }) => d);
  const out: KeypointDetection[] = [];
  while (rest.length > 0 && out.length < maxDetections) {
    const top = rest[0]!;
    const cluster: KeypointDetection[] = [];
    const left: KeypointDetection[] = [];
    for (const d of rest) {
      const same = opts.agnostic || d.cls === top.cls;
      (same && iou(top.box, d.box) > iouThreshold) || d === top ? cluster.push(d) : left.push(d);
    }
    out.push(blend(top, cluster));
    rest = left;
  }
  return out;
}

function blend(top: KeypointDetection, cluster: readonly KeypointDetection[]): KeypointDetection {
  const total = cluster.reduce((s, d) => s + d.score, 0);
  const mean = (f: (d: KeypointDetection) => number) =>
    cluster.reduce((s, d) => s + f(d) * d.score, 0) / total;
  const box = {
    x1: mean((d) => d.box.x1),
    y1: mean((d) => d.box.y1),
    x2: mean((d) => d.box.x2),
    y2: mean((d) => d.box.y2),
  };
  const keypoints = top.keypoints?.map((_, k) => ({
    x: mean((d) => d.keypoints?.[k]?.x ?? top.keypoints![k]!.x),
    y: mean((d) => d.keypoints?.[k]?.y ?? top.keypoints![k]!.y),
  }));
  return keypoints
    ? { cls: top.cls, score: top.score, box, keypoints }
    : { cls: top.cls, score: top.score, box };
}
