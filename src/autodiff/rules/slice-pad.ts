import type { RuleSet } from "../rule.js";

const INT64_MAX = 2 ** 62; // clamped by ORT to the dim; any value ≥ the dim means "to the end"

/** Slice and constant Pad, each the other's gradient (with constant starts/ends/pads and static sizes). */
export const slicePadRules: RuleSet = {
  // dX = Pad(dY) with zeros where the slice did not look; steps of 1 (or -1, reversed first)
  Slice: (c) => {
    const x = c.x();
    const starts = c.constNumbers(1);
    const ends = c.constNumbers(2);
    if (!starts || !ends) return c.fail("its gradient needs constant starts and ends");
    const rank = c.needRank(x);
    const axes = (c.constNumbers(3) ?? starts.map((_, i) => i)).map((a) => (a < 0 ? a + rank : a));
    const steps = c.constNumbers(4) ?? starts.map(() => 1);
    const xs = c.shape(x)!;
    const pads = new Array<number>(2 * rank).fill(0);
    let dy = c.dy()!;
    const reversed: number[] = [];
    for (const [i, axis] of axes.entries()) {
      const d = xs[axis];
      if (typeof d !== "number")
        return c.fail(`its gradient needs the static size of axis ${axis} of '${x}'`);
      const dim = d;
      const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + dim : v, lo), hi);
      const step = steps[i]!;
      if (step === 1) {
        const s = clamp(starts[i]!, 0, dim);
        const e = clamp(ends[i]!, 0, dim);
        pads[axis] = s;
        pads[axis + rank] = dim - Math.max(e, s);
      } else if (step === -1) {
        // walks from start down to end (exclusive): covers [e + 1, s]
        const s = clamp(starts[i]!, -1, dim - 1);
        const e = clamp(ends[i]!, -1, dim - 1);
        reversed.push(axis);
        pads[axis] = e + 1;
        pads[axis + rank] = dim - 1 - Math.max(s, e);
      } else c.fail(`gradients of Slice with step ${step} are not supported (steps ±1 are)`);
    }
    if (reversed.length > 0) {
      const n = reversed.length;
      dy = c.op("Slice", [
        dy,
        c.int64s(new Array(n).fill(-1)),
        c.int64s(new Array(n).fill(-INT64_MAX)),
        c.int64s(reversed),
        c.int64s(new Array(n).fill(-1)),
      ]);
    }
    return [pads.some((p) => p !== 0) ? c.op("Pad", [dy, c.int64s(pads)]) : dy];
  },

  // dX = the middle of dY: Slice off what was padded (and re-pad with zeros what a negative pad cropped)
  Pad: (c) => {
    const mode = c.string("mode", "constant");
    if (mode !== "constant") c.fail(`gradients of Pad mode '${mode}' are not supported (constant is)`);
    const x = c.x();
    const rank = c.needRank(x);
    const raw = c.constNumbers(1);
    if (!raw) return c.fail("its gradient needs constant pads");
    const axes = (c.constNumbers(3) ?? Array.from({ length: rank }, (_, i) => i)).map((a) =>
      a < 0 ? a + rank : a,
    );
    const pads = new Array<number>(2 * rank).fill(0);
    axes.forEach((a, i) => {
      pads[a] = raw[i]!;
      pads[a + rank] = raw[i + axes.length]!;
    });
    let dy = c.dy()!;
    const sliceAxes: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    for (let a = 0; a < rank; a++) {
      const b = Math.max(pads[a]!, 0);
      const e = Math.max(pads[a + rank]!, 0);
      if (b === 0 && e === 0) continue;
      sliceAxes.push(a);
      starts.push(b);
      ends.push(e === 0 ? INT64_MAX : -e);
    }
    if (sliceAxes.length > 0) dy = c.op("Slice", [dy, c.int64s(starts), c.int64s(ends), c.int64s(sliceAxes)]);
    const crop = pads.map((p) => Math.max(-p, 0));
    if (crop.some((p) => p > 0)) dy = c.op("Pad", [dy, c.int64s(crop)]);
    return [dy];
  },
};
