/**
 * EXPERIMENT (benchmarks only, not used by the library): alternative gradient rules for the two costliest pieces
 * of a CNN's backward pass, to measure what they would bring to a whole training step. They replace the built-in
 * rules for the process that calls `useFastRules()`, and fall back to them outside their simple cases.
 * - Conv (2-D, stride 1, dilation 1, group 1): dW by im2col (k·k shifted windows of xᵀ) and one Gemm with dYᵀ,
 *   instead of a Conv with the batch as the contraction; dX by a forward Conv with the flipped kernel instead of
 *   ConvTranspose.
 * - MaxPool (2-D, kernel = stride, no padding, sizes divisible): dX = dY where X equals its window's maximum,
 *   upsampled by Resize (nearest), instead of Indices + ScatterElements. Ties (equal maxima
 *   in one window) receive the gradient at every tied position, unlike PyTorch; after a ReLU the only likely ties
 *   are zeros, whose gradient the ReLU then stops.
 */
import type { GradContext } from "../../src/autodiff/context.js";
import { gradientRule, registerGradientRule } from "../../src/autodiff/index.js";
import { convGeometry } from "../../src/autodiff/rules/conv-geometry.js";

/** Run a built-in rule with some input gradients masked as not needed. */
function without(c: GradContext, skip: number[]): GradContext {
  const proxy = Object.create(c) as GradContext;
  proxy.needs = (i: number) => !skip.includes(i) && c.needs(i);
  return proxy;
}

export function useFastRules(): void {
  const conv = gradientRule("Conv")!;
  const maxPool = gradientRule("MaxPool")!;

  registerGradientRule(
    "Conv",
    (c) => {
      const ws = c.staticShape(c.x(1));
      const simple =
        c.needs(1) &&
        ws?.length === 4 &&
        c.int("group", 1) === 1 &&
        (c.ints("strides") ?? [1, 1]).every((s) => s === 1) &&
        (c.ints("dilations") ?? [1, 1]).every((d) => d === 1) &&
        c.string("auto_pad", "NOTSET") === "NOTSET";
      if (!simple) return conv(c);
      // dX (stride 1): a forward Conv of dY with the kernel flipped and its channel axes swapped, which ORT runs
      // with its fast forward-convolution kernels rather than ConvTranspose
      const out = conv(without(c, [0, 1]));
      if (c.needs(0)) {
        const geo0 = convGeometry(c, c.x(0), c.y(), ws!.slice(2));
        const flipped = c.op("Slice", [
          c.op("Transpose", [c.x(1)], { perm: [1, 0, 2, 3] }),
          c.int64s([-1, -1]),
          c.int64s([-(2 ** 62), -(2 ** 62)]),
          c.int64s([2, 3]),
          c.int64s([-1, -1]),
        ]);
        const k = geo0.kernel;
        const pads = [0, 1].map((i) => k[i]! - 1 - geo0.padBegin[i]!);
        const padsEnd = [0, 1].map((i) => geo0.inSize[i]! - geo0.outSize[i]! + k[i]! - 1 - pads[i]!);
        if ([...pads, ...padsEnd].every((p) => p >= 0)) {
          out[0] = c.op("Conv", [c.dy()!, flipped], { kernel_shape: k, pads: [...pads, ...padsEnd] });
        } else out[0] = conv(without(c, [1, 2]))[0];
      }
      const [co, ci, kh, kw] = ws as [number, number, number, number];
      const geo = convGeometry(c, c.x(0), c.y(), [kh, kw]);
      const [ho, wo] = geo.outSize as [number, number];
      const padEnd = [0, 1].map(
        (i) => geo.outSize[i]! + geo.kernel[i]! - 1 - geo.inSize[i]! - geo.padBegin[i]!,
      );
      const xt = c.op("Transpose", [c.x(0)], { perm: [1, 0, 2, 3] });
      const needPad = [...geo.padBegin, ...padEnd].some((p) => p !== 0);
      const padded = needPad
        ? c.op("Pad", [
            xt,
            c.int64s([0, 0, geo.padBegin[0]!, geo.padBegin[1]!, 0, 0, padEnd[0]!, padEnd[1]!]),
          ])
        : xt;
      const cols: string[] = [];
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const win =
            kh * kw === 1
              ? padded
              : c.op("Slice", [padded, c.int64s([i, j]), c.int64s([i + ho, j + wo]), c.int64s([2, 3])]);
          cols.push(c.op("Unsqueeze", [win, c.int64s([1])]));
        }
      }
      const stacked = cols.length === 1 ? cols[0]! : c.op("Concat", cols, { axis: 1 });
      const col = c.op("Reshape", [stacked, c.int64s([ci * kh * kw, -1])]);
      const dyt = c.op("Reshape", [c.op("Transpose", [c.dy()!], { perm: [1, 0, 2, 3] }), c.int64s([co, -1])]);
      out[1] = c.op("Reshape", [c.op("Gemm", [dyt, col], { transB: 1 }), c.int64s([co, ci, kh, kw])]);
      return out;
    },
    { replace: true },
  );

  registerGradientRule(
    "MaxPool",
    (c) => {
      const k = c.ints("kernel_shape");
      const s = c.ints("strides") ?? [1, 1];
      const xs = c.shape(c.x());
      const simple =
        k?.length === 2 &&
        xs?.length === 4 &&
        typeof xs[2] === "number" &&
        typeof xs[3] === "number" &&
        k.every((v, i) => v === s[i]) &&
        (c.ints("pads") ?? [0, 0, 0, 0]).every((p) => p === 0) &&
        (c.ints("dilations") ?? [1, 1]).every((d) => d === 1) &&
        c.int("ceil_mode", 0) === 0 &&
        c.string("auto_pad", "NOTSET") === "NOTSET" &&
        (xs[2] as number) % k[0]! === 0 &&
        (xs[3] as number) % k[1]! === 0;
      if (!simple) return maxPool(c);
      const [kh, kw] = k as [number, number];
      // nearest-neighbour upsampling (Resize, asymmetric coordinates) puts each window's max and dY on its cells
      const scales = c.floats([4], [1, 1, kh, kw], c.x());
      const up = (v: string) =>
        c.op("Resize", [v, "", scales], {
          mode: "nearest",
          coordinate_transformation_mode: "asymmetric",
          nearest_mode: "floor",
        });
      const mask = c.op("Cast", [c.op("Equal", [c.x(), up(c.y())], {}, "bool")], { to: 1 }, "float32");
      return [c.op("Mul", [mask, up(c.dy()!)])];
    },
    { replace: true },
  );
}
