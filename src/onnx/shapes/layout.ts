import type { Dim } from "../ir.js";
import { BroadcastError, broadcastShapes } from "./broadcast.js";
import type { Known, RuleCtx, ShapeRule } from "./context.js";
import { fmt, normAxis, product, sum, unify } from "./dims.js";

/** Axes from input `i` (when given; undefined if not known) or else attribute `name`. */
function axesFrom(c: RuleCtx, i: number, name: string): { given: boolean; axes?: number[] } {
  if (c.has(i)) return { given: true, axes: c.numbers(i) };
  const a = c.ints(name);
  return { given: a !== undefined, axes: a };
}

function normAxes(c: RuleCtx, axes: number[], rank: number, what: string): number[] {
  const out = axes.map((a) => {
    const n = normAxis(a, rank);
    if (n === undefined) c.fail(`${what} [${axes}] out of range for rank ${rank} (input ${fmt(c.shape(0))})`);
    return n;
  });
  if (new Set(out).size !== out.length) c.fail(`${what} [${axes}] repeat an axis`);
  return out;
}

/** Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred, symbols cancel against the input. */
const reshape: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  let target: Dim[] | undefined;
  if (c.has(1)) {
    target = c.value(1);
    const ts = c.shape(1);
    if (ts && ts.length !== 1) c.fail(`shape input ${fmt(ts)} must be 1-D`);
    if (!target)
      return [{ dtype, shape: ts && typeof ts[0] === "number" ? Array(ts[0]).fill(null) : undefined }];
  } else {
    target = c.ints("shape");
    if (!target) c.fail("has neither a shape input nor a shape attribute");
  }
  const allowzero = c.int("allowzero", 0) === 1;
  const out: Dim[] = target.map((t, i) => {
    if (t !== 0 || allowzero) return t;
    if (!x) return null;
    if (i >= x.length)
      c.fail(`shape [${target}] copies dim ${i} (0) but input ${fmt(x)} has rank ${x.length}`);
    return x[i]!;
  });
  const bad = out.find((d) => typeof d === "number" && d < -1);
  if (bad !== undefined) c.fail(`shape [${target}] has invalid dim ${bad}`);
  const infer = out.filter((d) => d === -1).length;
  if (infer > 1) c.fail(`shape [${target}] has more than one -1`);
  const passValue = c.value(0);
  const known: Known = { dtype, shape: out, value: passValue };
  if (!x) {
    if (infer) out[out.indexOf(-1)] = null;
    return [known];
  }
  const rest = cancel(
    x,
    out.filter((d) => d !== -1),
  );
  if (infer) {
    let d: Dim = null;
    if (rest) {
      if (rest.inSyms.length === 0 && rest.outSyms.length === 0) {
        if (rest.outNum === 0 || rest.inNum % rest.outNum !== 0) {
          c.fail(`cannot reshape input ${fmt(x)} (${rest.inNum} elements) to [${target}]: not divisible`);
        }
        d = rest.inNum / rest.outNum;
      } else if (rest.inSyms.length === 1 && rest.outSyms.length === 0 && rest.inNum === rest.outNum)
        d = rest.inSyms[0]!;
    }
    out[out.indexOf(-1)] = d;
  } else if (rest && rest.inSyms.length === 0 && rest.outSyms.length === 0 && rest.inNum !== rest.outNum) {
    c.fail(
      `cannot reshape input ${fmt(x)} (${product(x)} elements) to [${target}] (${product(out)} elements)`,
    );
  }
  return [known];
};

/** Cancel symbols shared by input and output dims; undefined when an unknown dim makes it impossible. */
function cancel(x: Dim[], out: Dim[]) {
  if (x.includes(null) || out.includes(null)) return undefined;
  const inSyms = x.filter((d): d is string => typeof d === "string");
  const outSyms: string[] = [];
  for (const d of out) {
    if (typeof d !== "string") continue;
    const at = inSyms.indexOf(d);
    if (at >= 0) inSyms.splice(at, 1);
    else outSyms.push(d);
  }
  const num = (ds: Dim[]) => ds.reduce<number>((p, d) => (typeof d === "number" ? p * d : p), 1);
  return { inSyms, outSyms, inNum: num(x), outNum: num(out) };
}

/** Flatten: [d0…dn] → [d0·…·d(axis-1), d(axis)·…·dn]. */
const flatten: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: c.dtype(0) }];
  const axis = c.int("axis", 1);
  const a = axis < 0 ? axis + x.length : axis;
  if (a < 0 || a > x.length) c.fail(`axis ${axis} is out of range for input ${fmt(x)}`);
  return [{ dtype: c.dtype(0), shape: [product(x.slice(0, a)), product(x.slice(a))] }];
};

const transpose: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: c.dtype(0) }];
  const perm = c.ints("perm") ?? x.map((_, i) => x.length - 1 - i);
  if (perm.length !== x.length || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    c.fail(`perm [${perm}] is not a permutation of the ${x.length} dims of input ${fmt(x)}`);
  }
  return [{ dtype: c.dtype(0), shape: perm.map((p) => x[p]!) }];
};

/** Squeeze: remove the given axes (which must be 1), or every dim of size 1 when none are given. */
const squeeze: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const { given, axes } = axesFrom(c, 1, "axes");
  const dtype = c.dtype(0);
  if (!x || (given && !axes)) return [{ dtype }];
  let drop: number[];
  if (given && axes!.length > 0) {
    drop = normAxes(c, axes!, x.length, "axes");
    for (const a of drop) {
      if (typeof x[a] === "number" && x[a] !== 1) c.fail(`axis ${a} of input ${fmt(x)} is ${x[a]}, not 1`);
    }
  } else {
    if (x.some((d) => typeof d !== "number")) return [{ dtype }];
    drop = x.flatMap((d, i) => (d === 1 ? [i] : []));
  }
  return [{ dtype, shape: x.filter((_, i) => !drop.includes(i)), value: c.value(0) }];
};

/** Unsqueeze: insert dims of size 1 at the given axes of the output. */
const unsqueeze: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const { given, axes } = axesFrom(c, 1, "axes");
  if (!given) c.fail("has no axes");
  if (!x || !axes) return [{ dtype: c.dtype(0) }];
  const rank = x.length + axes.length;
  const at = normAxes(c, axes, rank, "axes");
  const shape: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) shape.push(at.includes(i) ? 1 : x[j++]!);
  return [{ dtype: c.dtype(0), shape, value: c.value(0) }];
};

/** Expand: bidirectional broadcast of the input with the target shape. */
const expand: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const target = c.value(1);
  const ts = c.shape(1);
  if (!target || !x) {
    const r = ts && typeof ts[0] === "number" ? ts[0] : undefined;
    return [
      {
        dtype: c.dtype(0),
        shape: r !== undefined && x ? Array(Math.max(r, x.length)).fill(null) : undefined,
      },
    ];
  }
  try {
    return [{ dtype: c.dtype(0), shape: broadcastShapes(x, target) }];
  } catch (e) {
    if (e instanceof BroadcastError) c.fail(`input ${fmt(x)} cannot be expanded to [${target}]`);
    throw e;
  }
};

/** Tile: each dim times its repeat count. */
const tile: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  let reps = c.numbers(1);
  if (c.opset < 6 && c.has(2)) {
    // Tile-1: (input, tiles, axis) scalars
    const axis = c.numbers(2)?.[0];
    const a = x && axis !== undefined ? normAxis(axis, x.length) : undefined;
    reps = reps && a !== undefined ? x!.map((_, i) => (i === a ? reps![0]! : 1)) : undefined;
  }
  if (!x) return [{ dtype: c.dtype(0) }];
  if (!reps) return [{ dtype: c.dtype(0), shape: x.map(() => null) }];
  if (reps.length !== x.length) c.fail(`repeats [${reps}] do not match the rank of input ${fmt(x)}`);
  return [
    {
      dtype: c.dtype(0),
      shape: x.map((d, i) => (reps[i] === 1 ? d : typeof d === "number" ? d * reps[i]! : null)),
    },
  ];
};

/** Concat: equal ranks, equal dims except on axis, which is the sum. 1-D tracked values are concatenated. */
const concat: ShapeRule = (c: RuleCtx) => {
  const inputs = c.node.inputs.map((_, i) => i).filter((i) => c.has(i));
  const shapes = inputs.map((i) => c.shape(i));
  const axis = c.int("axis", c.opset < 4 ? 1 : Number.NaN);
  if (Number.isNaN(axis)) c.fail("has no axis");
  const first = shapes.find((s) => s);
  if (!first) return [{ dtype: c.dtype(0) }];
  const a = normAxis(axis, first.length);
  if (a === undefined) c.fail(`axis ${axis} is out of range for input ${fmt(first)}`);
  const shape = [...first];
  const along: Dim[] = [];
  for (const s of shapes) {
    if (!s) {
      along.push(null);
      continue;
    }
    if (s.length !== first.length) c.fail(`inputs ${shapes.map(fmt).join(", ")} have different ranks`);
    for (let i = 0; i < s.length; i++) {
      if (i === a) continue;
      const u = unify(shape[i]!, s[i]!);
      if (u === undefined)
        c.fail(`inputs ${shapes.map(fmt).join(", ")} differ on dim ${i}, not only on axis ${a}`);
      shape[i] = u;
    }
    along.push(s[a]!);
  }
  shape[a] = sum(along);
  const values = inputs.map((i) => c.value(i));
  const value = first.length === 1 && values.every((v) => v) ? values.flatMap((v) => v!) : undefined;
  return [{ dtype: c.dtype(0), shape, value }];
};

/** Split: sizes from the split input (13+), the split attribute, num_outputs (18+), or equal parts. */
const split: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const n = c.node.outputs.length;
  const dtype = c.dtype(0);
  if (!x) return Array.from({ length: n }, () => ({ dtype }));
  const axis = c.int("axis", 0);
  const a = normAxis(axis, x.length);
  if (a === undefined) c.fail(`axis ${axis} is out of range for input ${fmt(x)}`);
  const d = x[a]!;
  let sizes: Dim[] | undefined;
  if (c.has(1)) sizes = c.value(1);
  else if (c.ints("split")) sizes = c.ints("split");
  else if (typeof d === "number") {
    const parts = c.node.attrs.num_outputs ? c.int("num_outputs", n) : n;
    if (parts !== n) c.fail(`num_outputs=${parts} but the node has ${n} outputs`);
    if (c.node.attrs.num_outputs) {
      const size = Math.ceil(d / parts);
      sizes = Array.from({ length: n }, (_, i) => Math.max(0, Math.min(size, d - i * size)));
    } else {
      if (d % n !== 0) c.fail(`dim ${a} of input ${fmt(x)} (${d}) does not split into ${n} equal parts`);
      sizes = Array(n).fill(d / n);
    }
  }
  if (sizes && sizes.length !== n) c.fail(`split [${sizes}] has ${sizes.length} parts for ${n} outputs`);
  if (sizes && typeof d === "number" && sizes.every((s) => typeof s === "number")) {
    const total = (sizes as number[]).reduce((p, q) => p + q, 0);
    if (total !== d) c.fail(`split [${sizes}] sums to ${total}, dim ${a} of input ${fmt(x)} is ${d}`);
  }
  return Array.from({ length: n }, (_, i) => ({
    dtype,
    shape: x.map((dd, j) => (j === a ? (sizes?.[i] ?? null) : dd)),
  }));
};

/** Slice: per-axis clamped start:end:step, inputs from opset 10, attributes before. */
const slice: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype }];
  const fromInputs = c.opset >= 10;
  const starts = fromInputs ? c.numbers(1) : c.ints("starts");
  const ends = fromInputs ? c.numbers(2) : c.ints("ends");
  const axesG = fromInputs ? axesFrom(c, 3, "") : axesFrom(c, 99, "axes");
  const steps = fromInputs && c.has(4) ? c.numbers(4) : undefined;
  const stepsKnown = !fromInputs || !c.has(4) || steps !== undefined;
  if (!axesG.axes && axesG.given) return [{ dtype, shape: x.map(() => null) }];
  const axes = axesG.axes ? normAxes(c, axesG.axes, x.length, "axes") : undefined;
  if (!starts || !ends || !stepsKnown) {
    return [{ dtype, shape: x.map((d, i) => (!axes || axes.includes(i) ? null : d)) }];
  }
  const ax = axes ?? starts.map((_, i) => i);
  if (
    starts.length !== ends.length ||
    ax.length !== starts.length ||
    (steps && steps.length !== starts.length)
  ) {
    c.fail(`starts [${starts}], ends [${ends}], axes [${ax}] and steps [${steps ?? []}] differ in length`);
  }
  const shape = [...x];
  const ranges: [number, number, number][] = [];
  ax.forEach((a, k) => {
    const step = steps?.[k] ?? 1;
    if (step === 0) c.fail("a step is 0");
    const d = x[a]!;
    if (typeof d !== "number") {
      shape[a] = step === 1 && starts[k] === 0 && ends[k]! >= 2 ** 31 - 1 ? d : null;
      return;
    }
    const r = sliceRange(starts[k]!, ends[k]!, step, d);
    shape[a] = r.length;
    if (a === 0) ranges.push([r.start, r.length, step]);
  });
  const v = c.value(0);
  let value: Dim[] | undefined;
  if (v && x.length === 1 && typeof x[0] === "number") {
    const [start, len, step] = ranges[0] ?? [0, x[0], 1];
    value = Array.from({ length: len }, (_, i) => v[start + i * step]!);
  }
  return [{ dtype, shape, value }];
};

/** ONNX Slice semantics on one dim of size d: the first index and the number of elements taken. */
export function sliceRange(
  start: number,
  end: number,
  step: number,
  d: number,
): { start: number; length: number } {
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), d);
    e = Math.min(Math.max(e, 0), d);
  } else {
    s = Math.min(Math.max(s, 0), d - 1);
    e = Math.min(Math.max(e, -1), d - 1);
  }
  return { start: s, length: Math.max(0, Math.ceil((e - s) / step)) };
}

/** Pad: each dim grows by its begin and end pads (pads input from opset 11, attribute before; axes from 18). */
const pad: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype }];
  const pads = c.opset >= 11 ? c.numbers(1) : (c.ints("pads") ?? c.ints("paddings"));
  const axesG = c.opset >= 18 ? axesFrom(c, 3, "") : { given: false, axes: undefined };
  if (!pads || (axesG.given && !axesG.axes)) return [{ dtype, shape: x.map(() => null) }];
  const axes = axesG.axes ? normAxes(c, axesG.axes, x.length, "axes") : x.map((_, i) => i);
  if (pads.length !== 2 * axes.length)
    c.fail(`pads [${pads}] do not fit ${axes.length} axes of input ${fmt(x)}`);
  const shape = [...x];
  axes.forEach((a, k) => {
    const d = x[a]!;
    const p = pads[k]! + pads[k + axes.length]!;
    if (typeof d === "number" && d + p < 0)
      c.fail(`pads [${pads}] remove more than dim ${a} of input ${fmt(x)}`);
    shape[a] = p === 0 ? d : typeof d === "number" ? d + p : null;
  });
  return [{ dtype, shape }];
};

/** Resize (opset 10: X, scales; 11+: X, roi, scales, sizes; 18+: axes, keep_aspect_ratio_policy) and Upsample. */
const resize: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype }];
  const upsample = c.node.opType === "Upsample";
  let scales: number[] | undefined;
  let sizes: number[] | undefined;
  let unknown = false;
  if (upsample) {
    if (c.has(1)) scales = c.numbers(1);
    else if (c.floats("scales")) scales = c.floats("scales");
    else if (x.length === 4) scales = [1, 1, c.float("height_scale", 1), c.float("width_scale", 1)];
    unknown = !scales;
  } else if (c.opset < 11) {
    scales = c.numbers(1);
    unknown = !scales;
  } else {
    if (c.has(3)) sizes = c.numbers(3);
    else if (c.has(2)) scales = c.numbers(2);
    unknown = !sizes && !scales;
    if (!c.has(2) && !c.has(3)) c.fail("has neither scales nor sizes");
  }
  const axes =
    c.opset >= 18 && !upsample && c.ints("axes")
      ? normAxes(c, c.ints("axes")!, x.length, "axes")
      : x.map((_, i) => i);
  if (unknown) return [{ dtype, shape: x.map((d, i) => (axes.includes(i) ? null : d)) }];
  const given = (sizes ?? scales)!;
  if (given.length !== axes.length)
    c.fail(`${sizes ? "sizes" : "scales"} [${given}] do not fit input ${fmt(x)}`);
  const shape = [...x];
  const policy = c.opset >= 18 ? c.string("keep_aspect_ratio_policy", "stretch") : "stretch";
  if (sizes && policy !== "stretch") {
    const ratios = axes.map((a, k) =>
      typeof x[a] === "number" ? sizes![k]! / (x[a] as number) : Number.NaN,
    );
    if (ratios.some(Number.isNaN)) return [{ dtype, shape: x.map((d, i) => (axes.includes(i) ? null : d)) }];
    const r = policy === "not_larger" ? Math.min(...ratios) : Math.max(...ratios);
    axes.forEach((a) => {
      shape[a] = Math.round(r * (x[a] as number));
    });
    return [{ dtype, shape }];
  }
  axes.forEach((a, k) => {
    const d = x[a]!;
    if (sizes) shape[a] = sizes[k]!;
    else if (scales![k] === 1) shape[a] = d;
    else shape[a] = typeof d === "number" ? Math.floor(d * Math.fround(scales![k]!)) : null;
  });
  return [{ dtype, shape }];
};

export const layoutRules: Record<string, ShapeRule> = {
  Reshape: reshape,
  Flatten: flatten,
  Transpose: transpose,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Expand: expand,
  Tile: tile,
  Concat: concat,
  Split: split,
  Slice: slice,
  Pad: pad,
  Resize: resize,
  Upsample: resize,
};
