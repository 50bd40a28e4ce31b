/**
 * Mean average precision by the COCO protocol (pycocotools' COCOeval, bounding boxes, area "all", no crowd):
 *  - IoU thresholds 0.50:0.05:0.95 and recall thresholds 0:0.01:1, with the exact values numpy's linspace gives
 *    there (0.8999999999999999, 0.35000000000000003, ...), so results agree with pycocotools to the last digit;
 *  - per image and class, detections sorted by score (stable) and cut to `maxDets` (COCOeval applies maxDets per
 *    image *and category*); each is matched, in score order, to the unmatched ground truth of highest IoU ≥ t
 *    (on a tie the later ground truth wins, as in COCOeval); unmatched detections are false positives;
 *  - per class, all images' detections merged and sorted by score (stable), precision made monotone from the right
 *    (the envelope), read at each recall threshold as the precision of the first point whose recall reaches it
 *    (0 past the last point), and averaged over the 101 thresholds;
 *  - classes without ground truth are left out of every mean; a class with ground truth and no detections has AP 0.
 */
import { type Detection, iou, type LabeledBox } from "./boxes.js";

/** numpy.linspace(start, stop, num): start + i·step, the last value exactly stop. */
function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step + start));
}

export const IOU_THRESHOLDS: readonly number[] = linspace(0.5, 0.95, 10);
export const RECALL_THRESHOLDS: readonly number[] = linspace(0, 1, 101);

/** One image: its ground truth and the model's detections, boxes in the same pixel space. */
export interface EvalImage {
  gt: readonly LabeledBox[];
  dt: readonly Detection[];
}

export interface MapOptions {
  numClasses: number;
  /** Detections kept per image and class, highest scores first (default 100). */
  maxDets?: number;
}

export interface ClassAp {
  cls: number;
  /** Ground-truth boxes and detections (after the maxDets cut) of this class. */
  gtCount: number;
  dtCount: number;
  /** Mean AP over the ten IoU thresholds; NaN when the class has no ground truth (left out of the means). */
  ap: number;
  ap50: number;
  ap75: number;
  /** AP at each IoU threshold. */
  apPerIou: number[];
  /** Recall reached with all detections, at IoU 0.5. */
  recall50: number;
}

export interface MapResult {
  /** Means over the classes with ground truth; NaN when no class has any. */
  map: number;
  map50: number;
  map75: number;
  perClass: ClassAp[];
  /** Per class at IoU 0.5: interpolated precision at each of RECALL_THRESHOLDS (the curve to plot). */
  pr50: { cls: number; precision: number[] }[];
  /** Classes that have ground truth. */
  classesEvaluated: number;
}

/** Detections of one class in one image, with the ground truth each matched at each IoU threshold. */
interface Matched {
  scores: number[];
  /** tp[t][d]: detection d is a true positive at threshold t. */
  tp: boolean[][];
}

/**
 * Match one image's detections of one class to its ground truth of that class, at every IoU threshold.
 * `dts` must already be sorted by score, highest first.
 */
export function matchImage(gts: readonly LabeledBox[], dts: readonly Detection[]): Matched {
  const ious = dts.map((d) => gts.map((g) => iou(d.box, g.box)));
  const tp = IOU_THRESHOLDS.map((t) => {
    const taken = new Array<boolean>(gts.length).fill(false);
    return dts.map((_, d) => {
      let best = Math.min(t, 1 - 1e-10);
      let m = -1;
      for (let g = 0; g < gts.length; g++) {
        if (taken[g]) continue;
        const v = ious[d]![g]!;
        if (v < best) continue;
        best = v;
        m = g;
      }
      if (m >= 0) taken[m] = true;
      return m >= 0;
    });
  });
  return { scores: dts.map((d) => d.score), tp };
}

/** Stable sort of indices by descending key. */
function orderByScore(scores: readonly number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/**
 * Interpolated precision at each recall threshold from true-positive flags in score order and the number of
 * ground-truth boxes (> 0).
 */
export function interpolatedPrecision(tp: readonly boolean[], npos: number): number[] {
  const n = tp.length;
  const rc = new Float64Array(n);
  const pr = new Float64Array(n);
  let tps = 0;
  for (let i = 0; i < n; i++) {
    if (tp[i]) tps++;
    rc[i] = tps / npos;
    pr[i] = tps / (i + 1);
  }
  for (let i = n - 1; i > 0; i--) if (pr[i]! > pr[i - 1]!) pr[i - 1] = pr[i]!;
  const q: number[] = [];
  let i = 0;
  for (const r of RECALL_THRESHOLDS) {
    while (i < n && rc[i]! < r) i++; // first point whose recall reaches r (searchsorted, side left)
    q.push(i < n ? pr[i]! : 0);
  }
  return q;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** AP of one class over all images. */
function classAp(
  images: readonly EvalImage[],
  cls: number,
  maxDets: number,
): { ap: ClassAp; pr50: number[] } {
  const scores: number[] = [];
  const tps: boolean[][] = IOU_THRESHOLDS.map(() => []);
  let gtCount = 0;
  for (const im of images) {
    const gts = im.gt.filter((g) => g.cls === cls);
    const all = im.dt.filter((d) => d.cls === cls);
    const dts = orderByScore(all.map((d) => d.score))
      .slice(0, maxDets)
      .map((i) => all[i]!);
    gtCount += gts.length;
    const m = matchImage(gts, dts);
    scores.push(...m.scores);
    m.tp.forEach((flags, t) => {
      tps[t]!.push(...flags);
    });
  }
  const order = orderByScore(scores);
  const curves =
    gtCount === 0
      ? IOU_THRESHOLDS.map(() => RECALL_THRESHOLDS.map(() => Number.NaN))
      : tps.map((flags) =>
          interpolatedPrecision(
            order.map((i) => flags[i]!),
            gtCount,
          ),
        );
  const apPerIou = curves.map(mean);
  const hits50 = tps[0]!.filter(Boolean).length;
  return {
    ap: {
      cls,
      gtCount,
      dtCount: scores.length,
      ap: mean(apPerIou),
      ap50: apPerIou[0]!,
      ap75: apPerIou[5]!,
      apPerIou,
      recall50: gtCount === 0 ? Number.NaN : hits50 / gtCount,
    },
    pr50: curves[0]!,
  };
}

/** COCO mAP of detections against ground truth over a set of images. */
export function evaluateMap(images: readonly EvalImage[], opts: MapOptions): MapResult {
  const maxDets = opts.maxDets ?? 100;
  for (const im of images) {
    for (const o of [...im.gt, ...im.dt]) {
      if (!Number.isInteger(o.cls) || o.cls < 0 || o.cls >= opts.numClasses)
        throw new RangeError(`class ${o.cls} is outside 0..${opts.numClasses - 1}`);
    }
  }
  const perClass: ClassAp[] = [];
  const pr50: MapResult["pr50"] = [];
  for (let c = 0; c < opts.numClasses; c++) {
    const r = classAp(images, c, maxDets);
    perClass.push(r.ap);
    if (r.ap.gtCount > 0) pr50.push({ cls: c, precision: r.pr50 });
  }
  const evaluated = perClass.filter((c) => c.gtCount > 0);
  return {
    map: mean(evaluated.map((c) => c.ap)),
    map50: mean(evaluated.map((c) => c.ap50)),
    map75: mean(evaluated.map((c) => c.ap75)),
    perClass,
    pr50,
    classesEvaluated: evaluated.length,
  };
}
