import type { GradContext } from "../context.js";
import type { ConvGeometry } from "./conv-geometry.js";

/**
 * Largest window matrix (elements) the fast dW ways build; beyond it (large batches or feature maps) dW uses the
 * Conv with the batch as contraction, which needs no such buffer. 2²⁶ float32 = 256 MB.
 */
export const IM2COL_MAX_ELEMENTS = 2 ** 26;

/** One way to compute a Conv's dW from x, dY and its geometry; undefined when it does not apply. */
type WeightGradWay = (
  c: GradContext,
  x: string,
  dy: string,
  geo: ConvGeometry,
  group: number,
  ws: number[],
) => string | undefined;

/**
 * dW of a 2-D, group-1 Conv (any stride, pads, dilation) by im2col and one Gemm: the k_h·k_w windows of the padded
 * input, channels first ([C, N, H', W']; window (i, j) starts at (i·d_h, j·d_w) and steps by the strides), are
 * stacked to cols [C·k_h·k_w, N·H_o·W_o], and dW = dYᵀ [M, N·H_o·W_o] · colsᵀ, reshaped to [M, C, k_h, k_w].
 * Strided convs took the batch-contraction Conv before, which ran 2.5–3.2× slower than im2col at stride 1 on
 * cifar-cnn's layers (bench/engine/ops.ts).
 * One Gemm per window instead of the Concat was measured no faster on cifar-cnn's layers and 2–3× slower with
 * few input channels (many small Gemms). Undefined (use the batch-contraction Conv) for other ranks, groups, or
 * an im2col matrix over IM2COL_MAX_ELEMENTS.
 */
export const im2colWeightGrad: WeightGradWay = (c, x, dy, geo, group, ws) => {
  if (ws.length !== 4 || group !== 1) return undefined;
  const [co, ci, kh, kw] = ws as [number, number, number, number];
  const [ho, wo] = geo.outSize as [number, number];
  const batch = c.shape(x)?.[0];
  if (ci * kh * kw * ho * wo * (typeof batch === "number" ? batch : 1) > IM2COL_MAX_ELEMENTS)
    return undefined;
  // end padding so that the last window's last step lands inside (never more than the forward's own)
  const padEnd = [0, 1].map((i) =>
    Math.max(
      0,
      geo.dilations[i]! * (geo.kernel[i]! - 1) +
        geo.strides[i]! * (geo.outSize[i]! - 1) +
        1 -
        geo.inSize[i]! -
        geo.padBegin[i]!,
    ),
  );
  const xt = c.op("Transpose", [x], { perm: [1, 0, 2, 3] });
  const padded = [...geo.padBegin, ...padEnd].some((p) => p !== 0)
    ? c.op("Pad", [xt, c.int64s([0, 0, geo.padBegin[0]!, geo.padBegin[1]!, 0, 0, padEnd[0]!, padEnd[1]!])])
    : xt;
  const strided = geo.strides.some((s) => s !== 1);
  const cols: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const [oi, oj] = [i * geo.dilations[0]!, j * geo.dilations[1]!];
      const end = [oi + geo.strides[0]! * (ho - 1) + 1, oj + geo.strides[1]! * (wo - 1) + 1];
      if (kh * kw === 1 && !strided && [...geo.padBegin, ...padEnd].every((p) => p === 0)) {
        cols.push(padded);
        continue;
      }
      const sliceIn = [padded, c.int64s([oi, oj]), c.int64s(end), c.int64s([2, 3])];
      const win = c.op("Slice", strided ? [...sliceIn, c.int64s(geo.strides)] : sliceIn);
      cols.push(kh * kw === 1 ? win : c.op("Unsqueeze", [win, c.int64s([1])]));
    }
  }
  const stacked = cols.length === 1 ? cols[0]! : c.op("Concat", cols, { axis: 1 });
  const col = c.op("Reshape", [stacked, c.int64s([ci * kh * kw, -1])]);
  const dyt = c.op("Reshape", [c.op("Transpose", [dy], { perm: [1, 0, 2, 3] }), c.int64s([co, -1])]);
  return c.op("Reshape", [c.op("Gemm", [dyt, col], { transB: 1 }), c.int64s([co, ci, kh, kw])]);
};
