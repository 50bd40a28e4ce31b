import { DTYPE_CODE } from "../../onnx/dtype.js";
import type { GradContext } from "../context.js";
import type { RuleSet } from "../rule.js";
import { convGeometry, transposedPads } from "./conv-geometry.js";

/**
 * MaxPool. Every window's gradient goes to its maximum; when several elements tie for it, to the first in
 * row-major order within the window, as PyTorch and ORT's Indices output choose. Two ways:
 * - non-overlapping 2-D float32 windows (tiledMaxPoolGrad): by masks and nearest-neighbour upsampling, no Indices;
 * - anything else: the forward node is made to emit its Indices (flat positions in X), and the gradient scatters
 *   dY into a flat zero tensor with ScatterElements(reduction="add") — overlapping windows sharing a maximum add.
 *   (ORT's MaxPool is much slower when it also emits Indices — measured 3–12× in bench/engine/ops.ts — and
 *   ScatterElements is slow too, hence the first way.)
 */
function maxPoolGrad(c: GradContext): (string | undefined)[] {
  const tiled = tiledMaxPoolGrad(c);
  if (tiled) return [tiled];
  if (c.int("storage_order", 0) !== 0) c.fail("gradients need storage_order = 0");
  const x = c.x();
  const indices = c.y(1);
  const flatIdx = c.op("Reshape", [indices, c.int64s([-1])], {}, "int64");
  const flatDy = c.op("Reshape", [c.dy()!, c.int64s([-1])]);
  const s = c.staticShape(x);
  const size = s
    ? c.int64s([s.reduce((a, b) => a * b, 1)])
    : c.op("Reshape", [c.op("Size", [x], {}, "int64"), c.int64s([1])], {}, "int64");
  const zeros = c.op(
    "ConstantOfShape",
    [size],
    { value: { type: "tensor", value: { dtype: c.dtype(x), dims: [1], data: zeroOf(c.dtype(x)) } } },
    c.dtype(x),
  );
  const scattered = c.op("ScatterElements", [zeros, flatIdx, flatDy], { axis: 0, reduction: "add" });
  return [c.reshapeLike(scattered, x)];
}

/**
 * dX of a float32 2-D MaxPool whose windows tile the input: kernel = strides, no padding, no dilation; a floor-mode
 * tail (sizes not divisible by the kernel) is cropped off and gets zeros. With U(·) the nearest-neighbour
 * upsampling by the kernel size (Resize, one value per window):
 *   tied  = X == U(Y)                     the elements equal to their window's maximum
 *   code  = tied · P                      P = K − (row-major position within the window), K = k_h·k_w
 *   first = code == U(MaxPool(code))      the tied element with the largest code, i.e. the first one
 *   dX    = first · U(dY)
 * Codes are distinct within a window and the maximum itself is always tied, so exactly one element per window
 * gets dY: the same choice as the Indices rule and PyTorch. The plain equality mask `tied · U(dY)` costs 0.5–1×
 * as much (MaxPool forward + dX, bench/engine/ops.ts on a loaded 2-core machine) but hands dY to every tied
 * element, multiplying the window's gradient by the number of ties. Behind a ReLU the common ties are all-zero
 * windows, whose gradient the ReLU stops; but fake-quantized activations (QAT) take a few discrete values, so
 * ties of non-zero maxima are frequent there, and the mask would bias exactly the gradients qat trains with.
 * A window whose maximum is NaN gets no gradient. Undefined when the fast way does not apply.
 */
function tiledMaxPoolGrad(c: GradContext): string | undefined {
  const x = c.x();
  const kernel = c.ints("kernel_shape");
  // the batch may be symbolic; convGeometry below needs the spatial sizes static
  const xs = c.shape(x);
  if (kernel?.length !== 2 || xs?.length !== 4 || c.dtype(x) !== "float32") return undefined;
  if (xs.slice(2).some((d) => typeof d !== "number")) return undefined;
  if (c.ints("dilations")?.some((d) => d !== 1)) return undefined;
  const strides = c.ints("strides") ?? [1, 1];
  if (kernel.some((k, i) => k !== strides[i])) return undefined;
  const geo = convGeometry(c, x, c.y(), kernel);
  if ([...geo.padBegin, ...geo.padEnd].some((p) => p !== 0)) return undefined;
  const covered = geo.outSize.map((o, i) => o * kernel[i]!);
  // ceil mode can add a partial last window: only the exact tiling (covered = size) is handled here
  if (covered.some((s, i) => s > geo.inSize[i]!)) return undefined;
  const [kh, kw] = kernel as [number, number];
  const [hc, wc] = covered as [number, number];
  const crop = covered.some((s, i) => s !== geo.inSize[i]!);
  const xc = crop ? c.op("Slice", [x, c.int64s([0, 0]), c.int64s(covered), c.int64s([2, 3])]) : x;
  const scales = c.floats([4], [1, 1, kh, kw], x);
  const up = (v: string) =>
    c.op("Resize", [v, "", scales], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  const equal = (a: string, b: string) =>
    c.op("Cast", [c.op("Equal", [a, b], {}, "bool")], { to: DTYPE_CODE.float32 }, "float32");
  const tied = equal(xc, up(c.y()));
  const positions = new Float32Array(hc * wc);
  for (let i = 0; i < hc; i++)
    for (let j = 0; j < wc; j++) positions[i * wc + j] = kh * kw - ((i % kh) * kw + (j % kw));
  const code = c.op("Mul", [tied, c.floats([1, 1, hc, wc], positions, x)]);
  const best = up(c.op("MaxPool", [code], { kernel_shape: kernel, strides: kernel }));
  const dx = c.op("Mul", [equal(code, best), up(c.dy()!)]);
  if (!crop) return dx;
  const padEnd = geo.inSize.map((s, i) => s - covered[i]!);
  return c.op("Pad", [dx, c.int64s([0, 0, 0, 0, 0, 0, padEnd[0]!, padEnd[1]!])]);
}

function zeroOf(dtype: string): Float32Array | Float64Array {
  return dtype === "float64" ? new Float64Array(1) : new Float32Array(1);
}

/**
 * AveragePool: dX = ConvTranspose of dY / count with a ones kernel, one channel per group. The divisor of each
 * output position (it differs at the borders when count_include_pad = 0, or in ceil mode) is computed here
 * from the static geometry and folded into one constant.
 */
function averagePoolGrad(c: GradContext): (string | undefined)[] {
  const x = c.x();
  const kernel = c.ints("kernel_shape");
  if (!kernel) return c.fail("kernel_shape is missing");
  if (c.ints("dilations")?.some((d) => d !== 1)) c.fail("gradients of dilated AveragePool are not supported");
  const geo = convGeometry(c, x, c.y(), kernel);
  const includePad = c.int("count_include_pad", 0) === 1;
  const counts = divisors(geo, includePad);
  const uniform = counts.every((v) => v === counts[0]);
  const dy = c.dy()!;
  const scaled = uniform
    ? c.op("Mul", [dy, c.scalar(1 / counts[0]!, dy)])
    : c.op("Mul", [
        dy,
        c.floats(
          geo.outSize,
          counts.map((v) => 1 / v),
          dy,
        ),
      ]);
  const xs = c.shape(x)!;
  const channels = xs[1];
  const { pads, outputPadding } = transposedPads(geo);
  const attrs: Record<string, number[] | number> = { strides: geo.strides, pads };
  if (outputPadding.some((p) => p > 0)) attrs.output_padding = outputPadding;
  const ksize = kernel.reduce((a, b) => a * b, 1);
  if (typeof channels === "number") {
    // depthwise: group = C, one ones-kernel per channel
    const ones = c.floats([channels, 1, ...kernel], new Float64Array(channels * ksize).fill(1), dy);
    return [c.op("ConvTranspose", [scaled, ones], { ...attrs, group: channels })];
  }
  const ones = c.floats([1, 1, ...kernel], new Float64Array(ksize).fill(1), dy);
  const flat = c.op("Reshape", [scaled, c.int64s([-1, 1, ...geo.outSize])]);
  return [c.reshapeLike(c.op("ConvTranspose", [flat, ones], attrs), x)];
}

/** Divisor of every output position (row-major over the output's spatial dims). */
function divisors(geo: ReturnType<typeof convGeometry>, includePad: boolean): number[] {
  const perAxis = geo.outSize.map((o, i) => {
    const list: number[] = [];
    for (let p = 0; p < o; p++) {
      const start = p * geo.strides[i]! - geo.padBegin[i]!;
      const end = start + geo.kernel[i]!;
      const lo = includePad ? Math.max(start, -geo.padBegin[i]!) : Math.max(start, 0);
      const hi = includePad ? Math.min(end, geo.inSize[i]! + geo.padEnd[i]!) : Math.min(end, geo.inSize[i]!);
      list.push(hi - lo);
    }
    return list;
  });
  let out = [1];
  for (const axis of perAxis) out = out.flatMap((v) => axis.map((a) => v * a));
  return out;
}

/** GlobalAveragePool: dY [N, C, 1, 1] times a constant 1/(H·W) of the spatial shape broadcasts to dX in one Mul. */
function globalAveragePoolGrad(c: GradContext): (string | undefined)[] {
  const x = c.x();
  const dy = c.dy()!;
  const sp = c.shape(x)?.slice(2);
  if (sp?.every((d) => typeof d === "number")) {
    const dims = sp as number[];
    const n = dims.reduce((a, b) => a * b, 1);
    return [c.op("Mul", [dy, c.floats(dims, new Float64Array(n).fill(1 / n), dy)])];
  }
  // spatial size unknown statically: count it at run time
  const count = c.op("ReduceProd", [c.op("Shape", [x], { start: 2 }, "int64")], { keepdims: 0 }, "int64");
  const typed = c.op("Cast", [count], { to: DTYPE_CODE[c.dtype(dy)] }, c.dtype(dy));
  return [c.op("Expand", [c.op("Div", [dy, typed]), c.op("Shape", [x], {}, "int64")])];
}

export const poolRules: RuleSet = {
  MaxPool: maxPoolGrad,
  AveragePool: averagePoolGrad,
  GlobalAveragePool: globalAveragePoolGrad,
};
