import { DTYPE_CODE } from "../../onnx/dtype.js";
import type { GradContext } from "../context.js";
import type { RuleSet } from "../rule.js";
import { convGeometry, transposedPads } from "./conv-geometry.js";

/**
 * MaxPool: the forward node is made to emit its Indices (flat positions in X), and the gradient scatters dY
 * into a flat zero tensor with ScatterElements(reduction="add") — overlapping windows that share a maximum add.
 */
function maxPoolGrad(c: GradContext): (string | undefined)[] {
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
