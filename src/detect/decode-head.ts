/**
 * From a detector's raw outputs to detections through its head spec — one function the host and the board's
 * results both go through, so host/board differences are the model's numbers and never the post-processing.
 */
import { type Anchor, anchorCandidates, generateAnchors, type KeypointDetection } from "./anchors.js";
import type { Detection } from "./boxes.js";
import { decodeCenterNet } from "./center-decode.js";
import { decodeUltralytics } from "./decode.js";
import type { DetectSpec } from "./head-spec.js";
import { fromLetterbox, type LetterboxInfo } from "./letterbox.js";
import { nms } from "./nms.js";
import { ssdCandidates } from "./ssd.js";
import { weightedNms } from "./weighted-nms.js";

/** Named output tensors of one sample (batch 1). */
export type HeadOutputs = Record<string, { data: ArrayLike<number>; dims: readonly number[] }>;

function output(outputs: HeadOutputs, name: string): { data: ArrayLike<number>; dims: readonly number[] } {
  const t = outputs[name];
  if (!t)
    throw new RangeError(
      `the model has no output '${name}' (it has ${Object.keys(outputs).join(", ")}); fix the detect spec`,
    );
  return t;
}

/** Outputs of one kind joined along the candidate axis (BlazeFace splits its 896 anchors into 512 + 384). */
function joined(
  outputs: HeadOutputs,
  names: readonly string[],
): { data: Float32Array; n: number; last: number } {
  const parts = names.map((n) => output(outputs, n));
  const last = parts[0]!.dims.at(-1) ?? 1;
  const total = parts.reduce((s, p) => s + p.data.length, 0);
  const data = new Float32Array(total);
  let off = 0;
  for (const [i, p] of parts.entries()) {
    if ((p.dims.at(-1) ?? 1) !== last)
      throw new RangeError(
        `output '${names[i]}' has ${p.dims.at(-1)} values per candidate, '${names[0]}' has ${last}`,
      );
    data.set(p.data as ArrayLike<number>, off);
    off += p.data.length;
  }
  return { data, n: total / last, last };
}

const anchorCache = new Map<string, Anchor[]>();

/** The anchors of a spec (generated once per distinct anchor options). */
export function specAnchors(spec: DetectSpec): Anchor[] {
  if (!spec.anchors) throw new RangeError("the detect spec has no anchors");
  const opts = { ...spec.anchors, inputWidth: spec.input.width, inputHeight: spec.input.height };
  const key = JSON.stringify(opts);
  const cached = anchorCache.get(key);
  if (cached) return cached;
  const a = generateAnchors(opts);
  anchorCache.set(key, a);
  return a;
}

function candidates(outputs: HeadOutputs, spec: DetectSpec): KeypointDetection[] {
  const { width, height } = spec.input;
  if (spec.format === "ssd") {
    const s = output(outputs, spec.outputs.scores[0]!);
    const b = output(outputs, spec.outputs.boxes[0]!);
    return ssdCandidates(s.data, s.dims, b.data, b.dims, {
      layout: spec.ssd,
      threshold: spec.scoreThreshold,
      width,
      height,
    });
  }
  const anchors = specAnchors(spec);
  const scores = joined(outputs, spec.outputs.scores);
  const boxes = joined(outputs, spec.outputs.boxes);
  if (scores.n !== anchors.length || boxes.n !== anchors.length)
    throw new RangeError(
      `the anchor spec makes ${anchors.length} anchors, the model gives ${scores.n} scores and ${boxes.n} boxes; check strides and aspect ratios`,
    );
  return anchorCandidates(scores.data, boxes.data, anchors, {
    classes: scores.last,
    box: spec.boxCoding!,
    score: spec.scores,
    threshold: spec.scoreThreshold,
    width,
    height,
  });
}

/** A detection (and its keypoints) back in the source image through the letterbox. */
function unletterbox(d: KeypointDetection, lb: LetterboxInfo): KeypointDetection {
  const box = fromLetterbox(d.box, lb);
  if (!d.keypoints) return { ...d, box };
  const keypoints = d.keypoints.map((k) => ({
    x: (k.x - lb.padX) / lb.scaleX,
    y: (k.y - lb.padY) / lb.scaleY,
  }));
  return { ...d, box, keypoints };
}

/** Detections of one sample, in the source image's pixels when its letterbox is given. */
export function decodeHead(
  outputs: HeadOutputs,
  spec: DetectSpec,
  letterbox?: LetterboxInfo,
): KeypointDetection[] {
  const nmsOpts = {
    iouThreshold: spec.iouThreshold,
    scoreThreshold: spec.scoreThreshold,
    maxDetections: spec.maxDetections,
  };
  if (spec.format === "ultralytics") {
    const name = spec.outputs.predictions ?? Object.keys(outputs)[0]!;
    const p = output(outputs, name);
    return decodeUltralytics(p.data, p.dims, { ...nmsOpts, letterbox });
  }
  if (spec.format === "centernet") {
    const p = output(outputs, spec.outputs.predictions ?? Object.keys(outputs)[0]!);
    const dets = decodeCenterNet(p.data, p.dims, { ...nmsOpts, stride: spec.stride ?? 4 })[0] ?? [];
    return letterbox ? dets.map((d) => unletterbox(d, letterbox)) : dets;
  }
  const c = candidates(outputs, spec);
  const kept: Detection[] = spec.weightedNms ? weightedNms(c, nmsOpts) : nms(c, nmsOpts);
  return letterbox ? kept.map((d) => unletterbox(d, letterbox)) : kept;
}
