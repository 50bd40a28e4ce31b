import type { GradContext } from "../context.js";
import type { RuleSet } from "../rule.js";
import { type ConvGeometry, convGeometry, convWeightGrad, transposedPads } from "./conv-geometry.js";
import { weightGrad } from "./conv-weight-grad.js";

/**
 * Conv (any rank, strides, pads or auto_pad, dilations, groups incl. depthwise). Each gradient has a fast path
 * for the common case and a general one:
 * - dX: stride 1 (any groups) → a forward Conv of dY with the kernel flipped (flippedKernelInputGrad); otherwise
 *   ConvTranspose(dY, W) with output_padding landing on X's size.
 * - dW: group 1 → weightGrad (conv-weight-grad.ts): a 1×1 stride-1 unpadded kernel by one FusedMatMul of dY with
 *   x itself, any other by a one-hot grouped Conv that lays the windows of x out as [N, C·K, P] and one batched
 *   FusedMatMul with dY; grouped convs, or a window matrix over IM2COL_MAX_ELEMENTS, by a Conv of X with dY with
 *   the batch as the contraction (convWeightGrad). (Depthwise dW by one-hot Conv windows, a broadcast Mul and a
 *   ReduceSum was tried: on mobilenet-tiny's step its Mul over 9× the activations cost more than the grouped
 *   Conv it replaced, bench/step-profile.ts.)
 * - dB = ΣdY over batch and space.
 * The one-hot dW replaced im2col by Transpose + Pad + k_h·k_w Slices + Concat + Gemm, which it beat 1.1–2.8× at
 * the layer shapes of cifar-cnn, resnet8 and mobilenet-tiny (bench/engine/ops.ts --sections dw; whole float steps
 * of cifar-cnn and resnet8 took 0.84–0.86× the time, --sections step); ORT runs forward
 * Conv and Gemm/MatMul with its best MLAS kernels, ConvTranspose and a Conv whose "channels" are the batch less
 * well. The fast paths match PyTorch's gradients to 1e-4 (test/train/torch-grads.test.ts).
 */
export const convRules: RuleSet = {
  Conv: (c) => {
    const [x, w, b] = [c.x(0), c.x(1), c.x(2)];
    const dy = c.dy()!;
    const ws = c.needShape(w, "the Conv gradient");
    const kernel = ws.slice(2);
    const group = c.int("group", 1);
    const geo = convGeometry(c, x, c.y(), kernel);
    const out: (string | undefined)[] = [undefined, undefined, undefined];
    if (c.needs(0)) {
      out[0] = flippedKernelInputGrad(c, dy, w, geo, group);
      if (!out[0]) {
        const { pads, outputPadding } = transposedPads(geo);
        const attrs: Record<string, number[] | number> = {
          strides: geo.strides,
          dilations: geo.dilations,
          pads,
          group,
        };
        if (outputPadding.some((p) => p > 0)) attrs.output_padding = outputPadding;
        out[0] = c.op("ConvTranspose", [dy, w], attrs);
      }
    }
    if (c.needs(1)) {
      out[1] = weightGrad(c, x, dy, geo, group, ws) ?? convWeightGrad(c, x, dy, geo, group, ws[1]! * group);
    }
    if (c.needs(2) && b) out[2] = c.reduceSum(dy, [0, ...kernel.map((_, i) => i + 2)], false);
    return out;
  },
};

/**
 * dX of a stride-1 Conv as a forward Conv: dX[i] = Σₖ dY[i + pb − d·k]·W[k] is a correlation of dY with the kernel
 * flipped along every spatial axis and its channel axes swapped within each group ([G·Mg, Cg, k…] →
 * [G·Cg, Mg, k…]; depthwise kernels [C, 1, k…] only flip), padded by d·(k−1) − pb at the begin and d·(k−1) − pe
 * at the end, with the forward's groups. Any spatial rank and dilation. Undefined (use ConvTranspose) for
 * strides > 1 or a forward padding wider than the dilated kernel (the pads here would be negative).
 */
function flippedKernelInputGrad(
  c: GradContext,
  dy: string,
  w: string,
  geo: ConvGeometry,
  group: number,
): string | undefined {
  if (geo.strides.some((s) => s !== 1)) return undefined;
  const span = geo.kernel.map((k, i) => geo.dilations[i]! * (k - 1));
  const begin = span.map((s, i) => s - geo.padBegin[i]!);
  const end = span.map((s, i) => s - geo.padEnd[i]!);
  if ([...begin, ...end].some((p) => p < 0)) return undefined;
  const sp = geo.kernel.length;
  const spatialAxes = Array.from({ length: sp }, (_, i) => i + 2);
  const ws = c.needShape(w, "the Conv gradient");
  const [m, cg] = [ws[0]!, ws[1]!];
  let swapped: string;
  if (group === 1) swapped = c.op("Transpose", [w], { perm: [1, 0, ...spatialAxes] });
  else if (cg === 1 && m === group) swapped = w;
  else {
    const split = c.op("Reshape", [w, c.int64s([group, m / group, cg, ...geo.kernel])]);
    const moved = c.op("Transpose", [split], { perm: [0, 2, 1, ...spatialAxes.map((a) => a + 1)] });
    swapped = c.op("Reshape", [moved, c.int64s([group * cg, m / group, ...geo.kernel])]);
  }
  const flipped = c.op("Slice", [
    swapped,
    c.int64s(new Array(sp).fill(-1)),
    c.int64s(new Array(sp).fill(-(2 ** 62))),
    c.int64s(spatialAxes),
    c.int64s(new Array(sp).fill(-1)),
  ]);
  return c.op("Conv", [dy, flipped], {
    kernel_shape: geo.kernel,
    dilations: geo.dilations,
    pads: [...begin, ...end],
    group,
  });
}
