import { f32 } from "../onnx/tensor.js";
import { NetBuilder } from "./builder.js";
import { loadStateDict, type NetModel, NnError } from "./model.js";

/** Output stride of tiny-det: one output cell per 4×4 input pixels (24×24 cells on a 96×96 input). */
export const TINY_DET_STRIDE = 4;

/**
 * tiny-det: a CenterNet-style anchor-free detector (see docs/decisions.md), about 15 M multiply-adds on 96×96.
 * Backbone: Conv3×3 s2 →16, Conv3×3 s2 →24 (stride 4), Conv3×3 s2 →48 (stride 8), two Conv3×3 at stride 8 with
 * dilations 1 and 2 (receptive field 79 px, past the largest 48 px digits), every conv with BN and ReLU. Neck: the
 * stride-8 features upsampled ×2 (nearest) and concatenated with the stride-4 ones, Conv1×1 →24 and Conv3×3 →24
 * (BN, ReLU). Stride 4 at the output keeps two small digits of a class from sharing a cell; the heavy layers run at
 * stride 8, where they cost a quarter. Head: two 1×1 output convs, `head.cls` (one heatmap logit per class) and
 * `head.box` (four raw distances, left, top, right, bottom, from the cell centre; softplus(raw)·stride gives
 * pixels). Output "logits": [batch, classes + 4, H/4, W/4], their concatenation (src/detect/center-decode.ts).
 */
export function tinyDet(o: { seed: number; classes: number; inputShape?: number[] }): NetModel {
  const inputShape = o.inputShape ?? [1, 96, 96];
  const [, h, w] = inputShape;
  if (inputShape.length !== 3 || h! % 16 !== 0 || w! % 16 !== 0)
    throw new NnError(
      `input must be [C, H, W] with H and W multiples of 16, got [${inputShape}]`,
      "tiny-det",
    );
  const b = new NetBuilder("tiny-det", inputShape, o);
  const block = (x: string, name: string, out: number, kernel = 3, stride = 1, dilation = 1): string => {
    const pad = kernel === 3 ? dilation : 0;
    const y = b.conv2d(x, { name, out, kernel, stride, padding: pad, dilation, bias: false });
    return b.relu(b.batchNorm2d(y, { name: `${name}.bn` }));
  };
  const c4 = block(block(b.input, "stem.0", 16, 3, 2), "stem.1", 24, 3, 2);
  let x = block(c4, "body.0", 48, 3, 2);
  x = block(x, "body.1", 48);
  x = block(x, "body.2", 48, 3, 1, 2);
  x = b.concat([b.upsample(x, 2, "neck.up"), c4], "neck.cat");
  x = block(block(x, "neck.reduce", 24, 1), "head.conv", 24);
  const cls = b.conv2d(x, { name: "head.cls", out: o.classes, kernel: 1 });
  const box = b.conv2d(x, { name: "head.box", out: 4, kernel: 1 });
  const net = b.build(b.concat([cls, box], "head.out"));
  // heatmap bias at start: sigmoid(−4.6) ≈ 0.01, CenterNet's prior, so the first focal losses are not swamped by
  // thousands of negatives each predicted at 0.5
  loadStateDict(net, { "head.cls.bias": f32([o.classes], new Array(o.classes).fill(-4.6)) });
  return net;
}
