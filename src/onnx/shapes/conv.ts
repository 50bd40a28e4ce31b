import type { Dim } from "../ir.js";
import type { Known, RuleCtx, ShapeRule } from "./context.js";
import { describe } from "./context.js";
import { fmt, unify } from "./dims.js";

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin…, end…] as in the `pads` attribute; ignored when autoPad is not NOTSET. */
  pads: number[];
  autoPad: string;
}

/** The sliding-window attributes of a Conv or pool, checked against the number of spatial dims. */
function windowOf(c: RuleCtx, spatial: number, kernel: number[] | undefined): Window {
  if (!kernel) c.fail("kernel_shape is missing and cannot be taken from the weight");
  if (kernel.length !== spatial) {
    c.fail(
      `kernel_shape [${kernel}] has ${kernel.length} dims, input ${fmt(c.shape(0))} has ${spatial} spatial dims`,
    );
  }
  const strides = c.ints("strides") ?? kernel.map(() => 1);
  const dilations = c.ints("dilations") ?? kernel.map(() => 1);
  const pads = c.ints("pads") ?? kernel.flatMap(() => [0, 0]);
  const autoPad = c.string("auto_pad", "NOTSET");
  if (strides.length !== spatial || dilations.length !== spatial || pads.length !== 2 * spatial) {
    c.fail(
      `strides [${strides}], dilations [${dilations}] or pads [${pads}] do not fit ${spatial} spatial dims`,
    );
  }
  if (strides.some((s) => s <= 0) || dilations.some((d) => d <= 0) || kernel.some((k) => k <= 0)) {
    c.fail(`kernel_shape [${kernel}], strides [${strides}] and dilations [${dilations}] must be positive`);
  }
  if (!["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].includes(autoPad))
    c.fail(`unknown auto_pad '${autoPad}'`);
  return { kernel, strides, dilations, pads, autoPad };
}

/** Output size of one spatial dim of a Conv or pool (ceil_mode for pools). */
function windowDim(c: RuleCtx, w: Window, i: number, size: Dim, ceilMode: boolean): Dim {
  const k = (w.kernel[i]! - 1) * w.dilations[i]! + 1;
  const s = w.strides[i]!;
  if (w.autoPad === "SAME_UPPER" || w.autoPad === "SAME_LOWER") {
    if (typeof size !== "number") return s === 1 ? size : null;
    return Math.ceil(size / s);
  }
  const pb = w.autoPad === "VALID" ? 0 : w.pads[i]!;
  const pe = w.autoPad === "VALID" ? 0 : w.pads[i + w.kernel.length]!;
  if (typeof size !== "number") return s === 1 && pb + pe === k - 1 ? size : null;
  const span = size + pb + pe - k;
  if (span < 0) {
    c.fail(
      `input ${fmt(c.shape(0))} is smaller than the window (${k} with pads ${pb}+${pe}) on spatial dim ${i}`,
    );
  }
  if (!ceilMode) return Math.floor(span / s) + 1;
  let out = Math.ceil(span / s) + 1;
  // a window that would start in the end padding is dropped
  if ((out - 1) * s >= size + pb) out--;
  return out;
}

/** Conv: X [N,C,D…], W [M,C/group,k…], B [M] → [N,M,D'…]. */
const conv: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const w = c.shape(1);
  const group = c.int("group", 1);
  if (x && w) {
    if (x.length !== w.length) c.fail(`input and weight ranks differ (${describe(c, ["input", "weight"])})`);
    if (unify(x[1]!, typeof w[1] === "number" ? w[1] * group : null) === undefined) {
      c.fail(
        `input has ${x[1]} channels but weight ${fmt(w)} with group=${group} needs ${(w[1] as number) * group} (${describe(c, ["input", "weight"])})`,
      );
    }
    if (typeof w[0] === "number" && w[0] % group !== 0)
      c.fail(`weight ${fmt(w)}: ${w[0]} output channels are not divisible by group=${group}`);
  }
  const b = c.shape(2);
  if (b && w && (b.length !== 1 || unify(b[0]!, w[0]!) === undefined))
    c.fail(`bias ${fmt(b)} does not match weight ${fmt(w)}`);
  const rank = x?.length ?? w?.length;
  if (rank === undefined) return [{ dtype: c.dtype(0) }];
  if (rank < 3) c.fail(`input ${fmt(x)} needs at least one spatial dim`);
  const kernel =
    c.ints("kernel_shape") ??
    (w?.slice(2).every((d) => typeof d === "number") ? (w.slice(2) as number[]) : undefined);
  const channels = w ? w[0]! : null;
  if (!x || !kernel)
    return [{ dtype: c.dtype(0), shape: [x?.[0] ?? null, channels, ...Array(rank - 2).fill(null)] }];
  const win = windowOf(c, rank - 2, kernel);
  if (w?.slice(2).some((d, i) => typeof d === "number" && d !== kernel[i])) {
    c.fail(`kernel_shape [${kernel}] does not match weight ${fmt(w)}`);
  }
  return [
    {
      dtype: c.dtype(0),
      shape: [x[0]!, channels, ...x.slice(2).map((d, i) => windowDim(c, win, i, d, false))],
    },
  ];
};

/** ConvTranspose: X [N,C,D…], W [C,M/group,k…] → [N,M,D'…], from output_shape or the transpose formula. */
const convTranspose: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  const w = c.shape(1);
  const group = c.int("group", 1);
  if (x && w && unify(x[1]!, w[0]!) === undefined)
    c.fail(`input has ${x[1]} channels but weight ${fmt(w)} expects ${w[0]}`);
  const channels = w && typeof w[1] === "number" ? w[1] * group : null;
  const rank = x?.length ?? w?.length;
  if (rank === undefined) return [{ dtype: c.dtype(0) }];
  const spatial = rank - 2;
  const outShape = c.ints("output_shape");
  const kernel =
    c.ints("kernel_shape") ??
    (w?.slice(2).every((d) => typeof d === "number") ? (w.slice(2) as number[]) : undefined);
  if (outShape) {
    const sp = outShape.length === rank ? outShape.slice(2) : outShape;
    if (sp.length !== spatial) c.fail(`output_shape [${outShape}] does not fit input ${fmt(x)}`);
    return [{ dtype: c.dtype(0), shape: [x?.[0] ?? null, channels, ...sp] }];
  }
  if (!x || !kernel)
    return [{ dtype: c.dtype(0), shape: [x?.[0] ?? null, channels, ...Array(spatial).fill(null)] }];
  const win = windowOf(c, spatial, kernel);
  const outPad = c.ints("output_padding") ?? kernel.map(() => 0);
  const dims = x.slice(2).map((d, i): Dim => {
    if (typeof d !== "number") return null;
    const s = win.strides[i]!;
    if (win.autoPad === "SAME_UPPER" || win.autoPad === "SAME_LOWER") return d * s;
    const k = (kernel[i]! - 1) * win.dilations[i]! + 1;
    const pads = win.autoPad === "VALID" ? 0 : win.pads[i]! + win.pads[i + spatial]!;
    const out = s * (d - 1) + (outPad[i] ?? 0) + k - pads;
    if (out <= 0) c.fail(`output size ${out} on spatial dim ${i} for input ${fmt(x)} is not positive`);
    return out;
  });
  return [{ dtype: c.dtype(0), shape: [x[0]!, channels, ...dims] }];
};

/** MaxPool / AveragePool / LpPool: [N,C,D…] → [N,C,D'…]; MaxPool's Indices output is int64 of the same shape. */
const pool: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: c.dtype(0) }, { dtype: "int64" }];
  if (x.length < 3) c.fail(`input ${fmt(x)} needs at least one spatial dim`);
  const win = windowOf(c, x.length - 2, c.ints("kernel_shape"));
  const ceilMode = c.int("ceil_mode", 0) === 1;
  const shape = [x[0]!, x[1]!, ...x.slice(2).map((d, i) => windowDim(c, win, i, d, ceilMode))];
  return [
    { dtype: c.dtype(0), shape },
    { dtype: "int64", shape },
  ];
};

/** Global pools: [N,C,D…] → [N,C,1…]. */
const globalPool: ShapeRule = (c: RuleCtx) => {
  const x = c.shape(0);
  if (x && x.length < 3) c.fail(`input ${fmt(x)} needs at least one spatial dim`);
  const out: Known = { dtype: c.dtype(0), shape: x && [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] };
  return [out];
};

export const convRules: Record<string, ShapeRule> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool,
  AveragePool: pool,
  LpPool: pool,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  GlobalLpPool: globalPool,
};
