import { broadcastShapes, registerShapeRule } from "../../onnx/shapes.js";
import type { GradContext } from "../context.js";
import type { ConvGeometry } from "./conv-geometry.js";

/**
 * Largest window matrix (elements) the fast dW ways build; beyond it (large batches or feature maps) dW uses the
 * Conv with the batch as contraction, which needs no such buffer. 2²⁶ float32 = 256 MB.
 */
export const IM2COL_MAX_ELEMENTS = 2 ** 26;

/** One way to compute a Conv's dW from x, dY and its geometry; undefined when it does not apply. */
export type WeightGradWay = (
  c: GradContext,
  x: string,
  dy: string,
  geo: ConvGeometry,
  group: number,
  ws: number[],
) => string | undefined;

const product = (v: number[]): number => v.reduce((a, b) => a * b, 1);

/** Whether the window matrix of x ([C·k, N·P] elements) stays under IM2COL_MAX_ELEMENTS. */
function fitsWindowMatrix(c: GradContext, x: string, geo: ConvGeometry, cin: number): boolean {
  const batch = c.shape(x)?.[0];
  const n = typeof batch === "number" ? batch : 1;
  return cin * product(geo.kernel) * product(geo.outSize) * n <= IM2COL_MAX_ELEMENTS;
}

/**
 * a · bᵀ over the last two axes of two equally batched values, as ONE com.microsoft FusedMatMul (transB): ORT's
 * CPU build has its kernel (float32); modelOf imports the domain. Other element types take MatMul with a
 * Transpose.
 */
function productTransB(c: GradContext, a: string, b: string, rank: number): string {
  if (c.dtype(a) !== "float32") {
    // FusedMatMul has a float32 CPU kernel only
    const perm = Array.from({ length: rank }, (_, i) => i);
    [perm[rank - 1], perm[rank - 2]] = [rank - 2, rank - 1];
    return c.op("MatMul", [a, c.op("Transpose", [b], { perm })]);
  }
  const out = c.g.op(
    "FusedMatMul",
    [a, b],
    { transB: 1 },
    { name: `${c.node.name}_grad_FusedMatMul`, domain: MS },
  );
  c.info.note(out, c.dtype(a));
  return out;
}

const MS = "com.microsoft";

// shape inference of the FusedMatMul the dW ways emit: MatMul's with transA/transB (transBatch* stay unknown)
registerShapeRule(MS, "FusedMatMul", (c) => {
  const [a, b] = [c.shape(0), c.shape(1)];
  const plain = !c.int("transBatchA", 0) && !c.int("transBatchB", 0);
  if (!a || !b || a.length < 2 || b.length < 2 || !plain) return [{ dtype: c.dtype(0) }];
  const m = c.int("transA", 0) ? a[a.length - 1]! : a[a.length - 2]!;
  const n = c.int("transB", 0) ? b[b.length - 2]! : b[b.length - 1]!;
  try {
    return [{ dtype: c.dtype(0), shape: [...broadcastShapes(a.slice(0, -2), b.slice(0, -2)), m, n] }];
  } catch {
    return c.fail(`batch dims of [${a}] and [${b}] do not broadcast`);
  }
});

/**
 * dW of any Conv by one-hot im2col: ONE grouped Conv of x (its natural [N, C, …] layout) with C·K one-hot kernels
 * ([C·K, 1, k…], group C; K = Πk) and the forward's strides, pads and dilations gives the windows cols
 * [N, C·K, P] (channel c·K + κ is window position κ of input channel c; P = Πout), then per sample and group
 * dY [Mg, P] · colsᵀ [P, Cg·K] and a ReduceSum over the batch. No Transpose of x or dY, no Slices, no Concat.
 * Depthwise (Mg = 1): cols [N, G, K, P] · dY [N, G, P, 1] needs no transpose either.
 */
export const onehotWeightGrad: WeightGradWay = (c, x, dy, geo, group, ws) => {
  const [m, cg] = [ws[0]!, ws[1]!];
  const cin = cg * group;
  if (!fitsWindowMatrix(c, x, geo, cin)) return undefined;
  const k = product(geo.kernel);
  const p = product(geo.outSize);
  const mg = m / group;
  const e = new Float32Array(cin * k * k);
  for (let ch = 0; ch < cin; ch++) for (let i = 0; i < k; i++) e[(ch * k + i) * k + i] = 1;
  const onehot = c.floats([cin * k, 1, ...geo.kernel], e, x);
  const cols = c.op("Conv", [x, onehot], {
    kernel_shape: geo.kernel,
    strides: geo.strides,
    dilations: geo.dilations,
    pads: [...geo.padBegin, ...geo.padEnd],
    group: cin,
  });
  const cols4 = c.op("Reshape", [cols, c.int64s([0, group, cg * k, p])]);
  const perSample =
    mg === 1
      ? c.op("MatMul", [cols4, c.op("Reshape", [dy, c.int64s([0, group, p, 1])])])
      : productTransB(c, c.op("Reshape", [dy, c.int64s([0, group, mg, p])]), cols4, 4);
  return c.op("Reshape", [c.reduceSum(perSample, [0], false), c.int64s(ws)]);
};

/**
 * dW of a 1×1, stride-1, unpadded group-1 Conv (any rank): x is its own window matrix, so dW = Σₙ dY [M, P] · xᵀ
 * [P, C], ONE FusedMatMul of the two reshaped values and a ReduceSum over the batch. (Extending this to k×k
 * kernels by flat shifts — x padded and flattened per channel, window (i, j) a contiguous run at offset
 * i·d_h·W' + j·d_w, dY padded to W' columns — needs a Slice per window and a Concat, and was measured 1.1–1.9×
 * slower than onehotWeightGrad on cifar-cnn's and resnet8's 3×3 layers.)
 */
export const pointwiseWeightGrad: WeightGradWay = (c, x, dy, geo, group, ws) => {
  const pointwise =
    geo.kernel.every((k) => k === 1) &&
    geo.strides.every((s) => s === 1) &&
    [...geo.padBegin, ...geo.padEnd].every((p) => p === 0);
  if (group !== 1 || !pointwise) return undefined;
  const p = product(geo.outSize);
  const x3 = c.op("Reshape", [x, c.int64s([0, ws[1]!, p])]);
  const dy3 = c.op("Reshape", [dy, c.int64s([0, ws[0]!, p])]);
  return c.op("Reshape", [c.reduceSum(productTransB(c, dy3, x3, 3), [0], false), c.int64s(ws)]);
};

/** The dW ways by name (bench/engine/ops.ts times each at zoo layer shapes). */
export const WEIGHT_GRAD_WAYS: Record<string, WeightGradWay> = {
  onehot: onehotWeightGrad,
  pointwise: pointwiseWeightGrad,
};

/**
 * The dW way the Conv rule takes, by bench/engine/ops.ts at the layer shapes of cifar-cnn, resnet8 and
 * mobilenet-tiny: pointwiseWeightGrad where it applies, else for group 1 onehotWeightGrad (1.1–2.8× faster than
 * the im2col + Gemm it replaces on those layers, strided ones included); grouped and depthwise Convs → undefined
 * (the batch-contraction Conv, about as fast as the one-hot way on mobilenet-tiny's depthwise layers).
 */
export const weightGrad: WeightGradWay = (c, x, dy, geo, group, ws) =>
  pointwiseWeightGrad(c, x, dy, geo, group, ws) ??
  (group === 1 ? onehotWeightGrad(c, x, dy, geo, group, ws) : undefined);
