import { describe, expect, it } from "vitest";
import type { Box, Detection, LabeledBox } from "../../src/detect/boxes.js";
import { type EvalImage, evaluateMap, IOU_THRESHOLDS, RECALL_THRESHOLDS } from "../../src/detect/map.js";
import { Rng } from "../../src/util/rng.js";

// ---------------------------------------------------------------------------------------------------------------
// A second implementation, written from the protocol's description rather than from map.ts, and organised the
// other way round: for each (class, threshold) it walks every detection of the class over all images in global
// score order (ties: earlier image, then per-image score order), deciding matches on the fly with a table of
// taken ground truths per image — which gives the same matches as matching image by image, since matching only
// ever looks within one image. Precision at a recall level r is computed directly as the best precision at any
// point whose recall is ≥ r (the envelope, without building it), and AP is the sum over r = 0, 0.01, ... of that.
// ---------------------------------------------------------------------------------------------------------------

function overlap(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1));
  const ih = Math.max(0, Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1));
  const inter = iw * ih;
  const union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return inter > 0 ? inter / union : 0;
}

function bruteForceMap(images: EvalImage[], numClasses: number, maxDets = 100) {
  const apByClass: (number[] | undefined)[] = [];
  for (let c = 0; c < numClasses; c++) {
    const gtsOf = images.map((im) => im.gt.filter((g) => g.cls === c));
    const npos = gtsOf.reduce((n, g) => n + g.length, 0);
    if (npos === 0) {
      apByClass.push(undefined);
      continue;
    }
    // every kept detection of class c, tagged with its image and its rank within the image
    const pool: { img: number; rank: number; d: Detection }[] = [];
    images.forEach((im, img) => {
      const mine = im.dt.map((d, k) => ({ d, k })).filter((x) => x.d.cls === c);
      mine.sort((a, b) => (a.d.score === b.d.score ? a.k - b.k : b.d.score - a.d.score));
      mine.slice(0, maxDets).forEach((x, rank) => {
        pool.push({ img, rank, d: x.d });
      });
    });
    pool.sort((a, b) => (a.d.score !== b.d.score ? b.d.score - a.d.score : a.img - b.img || a.rank - b.rank));
    // matches are decided in per-image rank order, which the global order respects within each image
    const aps: number[] = [];
    for (const t of IOU_THRESHOLDS) {
      const taken = gtsOf.map((g) => g.map(() => false));
      const points: { recall: number; precision: number }[] = [];
      let tp = 0;
      pool.forEach((p, n) => {
        const gts = gtsOf[p.img]!;
        let pick = -1;
        let pickIou = -1;
        gts.forEach((g, gi) => {
          if (taken[p.img]![gi]) return;
          const v = overlap(p.d.box, g.box);
          if (v >= Math.min(t, 1 - 1e-10) && v >= pickIou) {
            pick = gi;
            pickIou = v;
          }
        });
        if (pick >= 0) {
          taken[p.img]![pick] = true;
          tp++;
        }
        points.push({ recall: tp / npos, precision: tp / (n + 1) });
      });
      let sum = 0;
      for (const r of RECALL_THRESHOLDS) {
        let best = 0;
        for (const q of points) if (q.recall >= r && q.precision > best) best = q.precision;
        sum += best;
      }
      aps.push(sum / RECALL_THRESHOLDS.length);
    }
    apByClass.push(aps);
  }
  const present = apByClass.filter((a): a is number[] => a !== undefined);
  const avg = (f: (a: number[]) => number) => present.reduce((s, a) => s + f(a), 0) / present.length;
  return {
    map: avg((a) => a.reduce((s, v) => s + v, 0) / a.length),
    map50: avg((a) => a[0]!),
    map75: avg((a) => a[5]!),
    perClass: apByClass,
  };
}

/** Random ground truth; predictions jittered from it, some missing, some extra, some with the wrong class. */
function randomCase(rng: Rng): { images: EvalImage[]; numClasses: number; maxDets: number } {
  const numClasses = 1 + rng.int(4);
  const nImages = 1 + rng.int(5);
  const maxDets = rng.next() < 0.2 ? 1 + rng.int(4) : 100;
  const images: EvalImage[] = [];
  const box = (): Box => {
    const x = rng.uniform(0, 80);
    const y = rng.uniform(0, 80);
    return { x1: x, y1: y, x2: x + rng.uniform(4, 30), y2: y + rng.uniform(4, 30) };
  };
  const jitter = (b: Box, s: number): Box => {
    const w = b.x2 - b.x1;
    const h = b.y2 - b.y1;
    const x1 = b.x1 + rng.normal() * s * w;
    const y1 = b.y1 + rng.normal() * s * h;
    return { x1, y1, x2: x1 + w * Math.exp(rng.normal() * s), y2: y1 + h * Math.exp(rng.normal() * s) };
  };
  for (let i = 0; i < nImages; i++) {
    const gt: LabeledBox[] = [];
    const n = rng.int(7);
    for (let k = 0; k < n; k++) gt.push({ cls: rng.int(numClasses), box: box() });
    const dt: Detection[] = [];
    const scale = rng.uniform(0.02, 0.3);
    for (const g of gt) {
      if (rng.next() < 0.2) continue; // missed
      const copies = rng.next() < 0.2 ? 2 : 1; // sometimes a duplicate
      for (let c = 0; c < copies; c++) {
        const cls = rng.next() < 0.1 ? rng.int(numClasses) : g.cls;
        // scores sometimes quantised, so ties happen
        const score = rng.next() < 0.3 ? Math.round(rng.next() * 4) / 4 : rng.next();
        dt.push({ cls, score, box: jitter(g.box, scale) });
      }
    }
    const extra = rng.int(4);
    for (let k = 0; k < extra; k++) dt.push({ cls: rng.int(numClasses), score: rng.next(), box: box() });
    images.push({ gt, dt });
  }
  return { images, numClasses, maxDets };
}

const det = (cls: number, score: number, b: Box): Detection => ({ cls, score, box: b });
const gtBox = (cls: number, b: Box): LabeledBox => ({ cls, box: b });
const sq = (x: number, y: number, s = 10): Box => ({ x1: x, y1: y, x2: x + s, y2: y + s });

describe("COCO mAP", () => {
  it("agrees with an independent brute-force implementation on 300 random cases (1e-6)", () => {
    const rng = new Rng(2024);
    let compared = 0;
    for (let k = 0; k < 300; k++) {
      const c = randomCase(rng);
      const got = evaluateMap(c.images, { numClasses: c.numClasses, maxDets: c.maxDets });
      const want = bruteForceMap(c.images, c.numClasses, c.maxDets);
      if (Number.isNaN(want.map)) {
        expect(got.map).toBeNaN();
        continue;
      }
      expect(Math.abs(got.map - want.map)).toBeLessThan(1e-6);
      expect(Math.abs(got.map50 - want.map50)).toBeLessThan(1e-6);
      expect(Math.abs(got.map75 - want.map75)).toBeLessThan(1e-6);
      got.perClass.forEach((pc, cls) => {
        const w = want.perClass[cls];
        if (w === undefined) expect(pc.ap).toBeNaN();
        else for (const [t, v] of w.entries()) expect(Math.abs(pc.apPerIou[t]! - v)).toBeLessThan(1e-6);
      });
      compared++;
    }
    // the generator must mostly produce cases with ground truth, or the comparison says little
    expect(compared).toBeGreaterThan(250);
  });

  it("uses pycocotools' threshold values", () => {
    expect(IOU_THRESHOLDS).toHaveLength(10);
    expect(IOU_THRESHOLDS[8]).toBe(0.8999999999999999); // numpy.linspace(.5, .95, 10)[8]
    expect(RECALL_THRESHOLDS).toHaveLength(101);
    expect(RECALL_THRESHOLDS[35]).toBe(0.35000000000000003); // numpy.linspace(0, 1, 101)[35]
  });

  it("perfect predictions score 1", () => {
    const images = [
      {
        gt: [gtBox(0, sq(0, 0)), gtBox(1, sq(20, 20))],
        dt: [det(0, 0.9, sq(0, 0)), det(1, 0.8, sq(20, 20))],
      },
      { gt: [gtBox(1, sq(50, 5))], dt: [det(1, 0.3, sq(50, 5))] },
    ];
    const r = evaluateMap(images, { numClasses: 2 });
    expect(r.map).toBe(1);
    expect(r.map50).toBe(1);
    expect(r.map75).toBe(1);
    expect(r.pr50.every((c) => c.precision.every((p) => p === 1))).toBe(true);
  });

  it("boxes shifted by a fifth of their width: IoU 2/3, so AP is 1 at thresholds ≤ 0.65 and 0 above", () => {
    // gt [0,10]×[0,10], prediction [2,12]×[0,10]: intersection 8·10 = 80, union 100 + 100 − 80 = 120, IoU = 2/3.
    // Thresholds 0.50, 0.55, 0.60, 0.65 ≤ 0.667 match (AP 1); 0.70 … 0.95 do not (AP 0): mAP50-95 = 4/10 = 0.4.
    const images = [{ gt: [gtBox(0, sq(0, 0))], dt: [det(0, 0.9, sq(2, 0))] }];
    const r = evaluateMap(images, { numClasses: 1 });
    expect(r.map).toBeCloseTo(0.4, 12);
    expect(r.map50).toBe(1);
    expect(r.map75).toBe(0);
    expect(r.perClass[0]!.apPerIou).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
  });

  it("a duplicate after the true detection is a false positive that costs nothing at full recall", () => {
    // Two gts (one per image). Detections by score: A1 (tp, image 1), A1' duplicate (fp), B (tp, image 2).
    // Points: (recall, precision) = (0.5, 1), (0.5, 0.5), (1, 2/3). Envelope: precision 1 up to recall 0.5,
    // then 2/3. Recall thresholds 0.00..0.50 (51 of them) read 1, 0.51..1.00 (50) read 2/3:
    // AP = (51·1 + 50·2/3) / 101 = (51 + 33.333…) / 101 = 0.834983498…
    const images = [
      { gt: [gtBox(0, sq(0, 0))], dt: [det(0, 0.9, sq(0, 0)), det(0, 0.8, sq(0, 0))] },
      { gt: [gtBox(0, sq(0, 0))], dt: [det(0, 0.7, sq(0, 0))] },
    ];
    const r = evaluateMap(images, { numClasses: 1 });
    const ap = (51 + (50 * 2) / 3) / 101;
    expect(r.map).toBeCloseTo(ap, 12);
    expect(r.map50).toBeCloseTo(ap, 12);
    // the same duplicate ranked last costs nothing: precision is 1 until full recall is reached
    const last = [
      { gt: [gtBox(0, sq(0, 0))], dt: [det(0, 0.9, sq(0, 0)), det(0, 0.1, sq(0, 0))] },
      { gt: [gtBox(0, sq(0, 0))], dt: [det(0, 0.7, sq(0, 0))] },
    ];
    expect(evaluateMap(last, { numClasses: 1 }).map).toBe(1);
  });

  it("a missed box caps recall: with 2 of 3 found, thresholds above 2/3 read 0", () => {
    // Three gts, two detected exactly. Recall reaches 2/3 at precision 1. Thresholds 0.00..0.66 (67 of them)
    // read 1, 0.67..1.00 read 0: AP = 67/101 = 0.663366…
    const images = [
      {
        gt: [gtBox(0, sq(0, 0)), gtBox(0, sq(30, 0)), gtBox(0, sq(60, 0))],
        dt: [det(0, 0.9, sq(0, 0)), det(0, 0.8, sq(30, 0))],
      },
    ];
    const r = evaluateMap(images, { numClasses: 1 });
    expect(r.map).toBeCloseTo(67 / 101, 12);
    expect(r.perClass[0]!.recall50).toBeCloseTo(2 / 3, 12);
  });

  it("a wrong-class box is a miss for its true class and a false positive for the other", () => {
    // Class 0: gts at (0,0) and (30,0); (0,0) is found, (30,0) is detected as class 1. Class 0 AP = 51/101
    // (recall 0.5 at precision 1). Class 1 has no ground truth: left out of the mean. mAP = 51/101 = 0.50495…
    const images = [
      { gt: [gtBox(0, sq(0, 0)), gtBox(0, sq(30, 0))], dt: [det(0, 0.9, sq(0, 0)), det(1, 0.95, sq(30, 0))] },
    ];
    const r = evaluateMap(images, { numClasses: 2 });
    expect(r.map).toBeCloseTo(51 / 101, 12);
    expect(r.classesEvaluated).toBe(1);
    expect(r.perClass[1]!.ap).toBeNaN();
    expect(r.perClass[1]!.dtCount).toBe(1);
    // give class 1 a ground truth elsewhere: its lone detection is a false positive, AP 0, and the mean halves
    const withGt = [{ ...images[0]!, gt: [...images[0]!.gt, gtBox(1, sq(70, 70))] }];
    expect(evaluateMap(withGt, { numClasses: 2 }).map).toBeCloseTo(51 / 101 / 2, 12);
  });

  it("cuts detections to maxDets per image and class, by score", () => {
    // 3 gts and 3 exact detections; with maxDets 2 only the two best are kept: recall 2/3 → AP 67/101.
    const images = [
      {
        gt: [gtBox(0, sq(0, 0)), gtBox(0, sq(30, 0)), gtBox(0, sq(60, 0))],
        dt: [det(0, 0.1, sq(60, 0)), det(0, 0.9, sq(0, 0)), det(0, 0.8, sq(30, 0))],
      },
    ];
    expect(evaluateMap(images, { numClasses: 1, maxDets: 2 }).map).toBeCloseTo(67 / 101, 12);
    expect(evaluateMap(images, { numClasses: 1, maxDets: 3 }).map).toBe(1);
  });

  it("has no mean without ground truth, and rejects classes outside the range", () => {
    expect(evaluateMap([{ gt: [], dt: [det(0, 0.5, sq(0, 0))] }], { numClasses: 1 }).map).toBeNaN();
    expect(() => evaluateMap([{ gt: [gtBox(3, sq(0, 0))], dt: [] }], { numClasses: 2 })).toThrow(/class 3/);
  });
});
