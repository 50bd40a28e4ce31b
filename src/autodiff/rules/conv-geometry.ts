import type { GradContext } from "../context.js";

/** The spatial geometry of a convolution or pool, resolved to explicit numbers. */
export interface ConvGeometry {
  /** Spatial sizes of the input. */
  inSize: number[];
  /** Spatial sizes of the output. */
  outSize: number[];
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Begin and end paddings per spatial axis (auto_pad resolved). */
  padBegin: number[];
  padEnd: number[];
}

/**
 * Resolve a Conv/pool node's geometry from its attributes and the static spatial sizes of `x` (input) and `y`
 * (output). `kernel` comes from the weight's shape or kernel_shape.
 */
export function convGeometry(c: GradContext, x: string, y: string, kernel: number[]): ConvGeometry {
  const xs = c.shape(x);
  const ys = c.shape(y);
  const spatial = kernel.length;
  const inSize = xs?.slice(2);
  const outSize = ys?.slice(2);
  const isStatic = (s: unknown[] | undefined): s is number[] =>
    !!s && s.length === spatial && s.every((d) => typeof d === "number");
  if (!isStatic(inSize))
    c.fail(`its gradient needs the static spatial size of '${x}'; run shape inference first`);
  const strides = c.ints("strides") ?? new Array(spatial).fill(1);
  const dilations = c.ints("dilations") ?? new Array(spatial).fill(1);
  const autoPad = c.string("auto_pad", "NOTSET");
  let padBegin: number[];
  let padEnd: number[];
  const ceil = c.int("ceil_mode", 0) === 1;
  if (autoPad === "NOTSET") {
    const pads = c.ints("pads") ?? new Array(2 * spatial).fill(0);
    padBegin = pads.slice(0, spatial);
    padEnd = pads.slice(spatial);
  } else if (autoPad === "VALID") {
    padBegin = new Array(spatial).fill(0);
    padEnd = new Array(spatial).fill(0);
  } else if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    padBegin = [];
    padEnd = [];
    for (let i = 0; i < spatial; i++) {
      const out = Math.ceil(inSize[i]! / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + dilations[i]! * (kernel[i]! - 1) + 1 - inSize[i]!);
      const small = Math.floor(total / 2);
      padBegin.push(autoPad === "SAME_UPPER" ? small : total - small);
      padEnd.push(autoPad === "SAME_UPPER" ? total - small : small);
    }
  } else return c.fail(`unknown auto_pad '${autoPad}'`);
  const computed = inSize.map((h, i) => {
    const span = h + padBegin[i]! + padEnd[i]! - dilations[i]! * (kernel[i]! - 1) - 1;
    return (ceil ? Math.ceil(span / strides[i]!) : Math.floor(span / strides[i]!)) + 1;
  });
  if (ceil) {
    // ONNX: a ceil-mode window that would start inside the end padding is dropped
    computed.forEach((o, i) => {
      if ((o - 1) * strides[i]! >= inSize[i]! + padBegin[i]!) computed[i] = o - 1;
    });
  }
  if (isStatic(outSize) && outSize.some((o, i) => o !== computed[i])) {
    c.fail(`output size [${outSize}] does not match the size [${computed}] its attributes give`);
  }
  return { inSize, outSize: computed, kernel, strides, dilations, padBegin, padEnd };
}

/**
 * dW of a convolution as a Conv of the input with the output gradient: the batch becomes the contraction, so the
 * input is laid out [Cg, G·N, …] and the output gradient [M, N, …]; strides and dilations swap roles. Returns the
 * gradient in the weight layout [M, Cg, k…]. `x` and `dy` are the convolution's input and output gradient with
 * channels C = G·Cg and M = G·Mg.
 */
export function convWeightGrad(
  c: GradContext,
  x: string,
  dy: string,
  geo: ConvGeometry,
  group: number,
  cin: number,
): string {
  const sp = geo.kernel.length;
  const cg = cin / group;
  const spatialAxes = Array.from({ length: sp }, (_, i) => i + 2);
  let xt: string;
  if (group === 1) xt = c.op("Transpose", [x], { perm: [1, 0, ...spatialAxes] });
  else {
    const split = c.op("Reshape", [x, c.int64s([0, group, cg, ...geo.inSize])]);
    const moved = c.op("Transpose", [split], { perm: [2, 1, 0, ...spatialAxes.map((a) => a + 1)] });
    xt = c.op("Reshape", [moved, c.int64s([cg, -1, ...geo.inSize])]);
  }
  const dyt = c.op("Transpose", [dy], { perm: [1, 0, ...spatialAxes] });
  // end padding so that exactly k positions come out (never more than the forward's own end padding)
  const padEnd = geo.kernel.map((k, i) => {
    const need =
      geo.dilations[i]! * (k - 1) +
      geo.strides[i]! * (geo.outSize[i]! - 1) +
      1 -
      geo.inSize[i]! -
      geo.padBegin[i]!;
    return Math.max(0, need);
  });
  const got = geo.kernel.map((_, i) => {
    const span = geo.inSize[i]! + geo.padBegin[i]! + padEnd[i]! - geo.strides[i]! * (geo.outSize[i]! - 1) - 1;
    return Math.floor(span / geo.dilations[i]!) + 1;
  });
  let dw = c.op("Conv", [xt, dyt], {
    strides: geo.dilations,
    dilations: geo.strides,
    pads: [...geo.padBegin, ...padEnd],
    group,
  });
  if (got.some((g, i) => g !== geo.kernel[i])) {
    dw = c.op("Slice", [dw, c.int64s(new Array(sp).fill(0)), c.int64s(geo.kernel), c.int64s(spatialAxes)]);
  }
  return c.op("Transpose", [dw], { perm: [1, 0, ...spatialAxes] });
}

/**
 * ConvTranspose settings that map a gradient of the output size back onto the input positions [0, inSize):
 * begin pads as in the forward, and the end cropped or extended (output_padding) to land exactly on inSize.
 */
export function transposedPads(geo: ConvGeometry): { pads: number[]; outputPadding: number[] } {
  const padEnd: number[] = [];
  const outputPadding: number[] = [];
  geo.kernel.forEach((k, i) => {
    const covered =
      geo.strides[i]! * (geo.outSize[i]! - 1) + geo.dilations[i]! * (k - 1) + 1 - geo.padBegin[i]!;
    const extra = covered - geo.inSize[i]!;
    padEnd.push(Math.max(0, extra));
    outputPadding.push(Math.max(0, -extra));
  });
  return { pads: [...geo.padBegin, ...padEnd], outputPadding };
}
