/**
 * Host vs board in detection terms: the shape of a detection validation report (written by `qat validate --task
 * detect`, read by `qat report`; both layers import it from here, below them) and box agreement — the share of the
 * host's detections the board also makes, same class, IoU ≥ 0.9.
 */
import { type Detection, iou, type LabeledBox } from "./boxes.js";

export interface Stat {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

/** mAP figures of one side against the ground truth. */
export interface DetectMetrics {
  map: number;
  map50: number;
  perClass: { cls: number; name: string; gt: number; ap: number; ap50: number }[];
  /** Interpolated precision at recalls 0, 0.01, …, 1, IoU 0.5, per class with ground truth. */
  pr50: { cls: number; name: string; precision: number[] }[];
}

export interface Agreement {
  /** Host detections at or above `minScore`, and how many the board matched. */
  hostDetections: number;
  matched: number;
  /** matched / hostDetections (1 when the host has none). */
  share: number;
  iou: number;
  minScore: number;
}

/** A detection as drawn: class, score and box in the image's pixels. */
export type DrawnDetection = Detection;

export interface DetectBoardRow {
  device: string;
  board?: string;
  arch?: string;
  error?: { code: string; message: string };
  metrics?: DetectMetrics;
  /** board − host, in AP points (fractions: 0.01 = one point). */
  delta?: {
    map: number;
    map50: number;
    perClass: { cls: number; name: string; host: number; board: number; delta: number }[];
  };
  agreement?: Agreement;
  /** Per image, milliseconds: inference on the board, post-processing (decode + NMS), their sum. */
  latencyMs?: { inference: Stat; post: Stat; total: Stat };
  /** Where the inference times come from: the board, or an emulator on the host (then `note` says which). */
  timing?: { emulated: boolean; note?: string };
  peakRssBytes?: number;
  /** The board's detections of each sample image (same order as `samples`). */
  samples?: DrawnDetection[][];
}

export interface DetectSample {
  file: string;
  width: number;
  height: number;
  gt: LabeledBox[];
  host: DrawnDetection[];
}

export interface DetectValidationReport {
  task: "detect";
  model: string;
  dataset: string;
  split: string;
  images: number;
  classNames: string[];
  /** The head format and where the spec came from (a file, or inferred from the model). */
  head: { format: string; spec: string };
  /** Where post-processing ran and why the figures are what they are. */
  postProcessing: string;
  host: { metrics: DetectMetrics; latencyMs: { inference: Stat; post: Stat; total: Stat } };
  rows: DetectBoardRow[];
  /** Detections drawn in the report: score at least this. */
  drawScore: number;
  samples: DetectSample[];
  failed: number;
  /** Some board failed, or lost more mAP50-95 than --max-drift. */
  exceeded: boolean;
}

/**
 * Box agreement of one image: host detections scoring at least `minScore`, in score order, each matched to the
 * unmatched board detection of its class with the highest IoU, if that IoU reaches `iouMin`. Board detections of
 * any score the decoder kept count, so a score moving across `minScore` is not a disagreement of boxes.
 */
export function matchAgreement(
  host: readonly Detection[],
  board: readonly Detection[],
  iouMin: number,
  minScore: number,
): { hostDetections: number; matched: number } {
  const hs = host.filter((d) => d.score >= minScore).sort((a, b) => b.score - a.score);
  const taken = new Array<boolean>(board.length).fill(false);
  let matched = 0;
  for (const h of hs) {
    let best = -1;
    let bestIou = iouMin;
    board.forEach((b, j) => {
      if (taken[j] || b.cls !== h.cls) return;
      const v = iou(h.box, b.box);
      if (v >= bestIou) {
        bestIou = v;
        best = j;
      }
    });
    if (best >= 0) {
      taken[best] = true;
      matched++;
    }
  }
  return { hostDetections: hs.length, matched };
}

/** Agreement over a set of images. */
export function agreementOf(
  host: readonly (readonly Detection[])[],
  board: readonly (readonly Detection[])[],
  iouMin = 0.9,
  minScore = 0.25,
): Agreement {
  let n = 0;
  let m = 0;
  host.forEach((h, i) => {
    const r = matchAgreement(h, board[i] ?? [], iouMin, minScore);
    n += r.hostDetections;
    m += r.matched;
  });
  return { hostDetections: n, matched: m, share: n === 0 ? 1 : m / n, iou: iouMin, minScore };
}
