import type { Graph } from "../onnx/ir.js";
import { f32 } from "../onnx/tensor.js";

/**
 * Loss builders: each appends nodes to a graph and returns the name of the scalar loss. They use ops with
 * gradient rules (SoftmaxCrossEntropyLoss, Softplus, arithmetic), so `appendBackward` differentiates them.
 * Constants are float32, matching qat's float32 training graphs.
 */

export interface CrossEntropyOptions {
  /** Label smoothing ε in [0, 1): targets become (1 − ε)·onehot + ε/C, as in PyTorch's CrossEntropyLoss. */
  labelSmoothing?: number;
  /** Labels equal to this are ignored (excluded from the mean). Not combined with label smoothing. */
  ignoreIndex?: number;
}

/**
 * Mean softmax cross-entropy of logits [N, C] (or [N, C, d…]) against int64 class labels [N] ([N, d…]).
 * With smoothing: (1 − ε)·NLL + ε·mean over samples and classes of −log p.
 */
export function crossEntropyLoss(
  g: Graph,
  logits: string,
  labels: string,
  opts: CrossEntropyOptions = {},
): string {
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1)) throw new RangeError(`label smoothing must be in [0, 1), got ${eps}`);
  if (eps > 0 && opts.ignoreIndex !== undefined)
    throw new RangeError("label smoothing with ignoreIndex is not supported");
  const attrs: Record<string, number | string> = { reduction: "mean" };
  if (opts.ignoreIndex !== undefined) attrs.ignore_index = opts.ignoreIndex;
  if (eps === 0) return g.op("SoftmaxCrossEntropyLoss", [logits, labels], attrs, { name: "cross_entropy" });
  const [nll, logp] = g.add("SoftmaxCrossEntropyLoss", [logits, labels], attrs, {
    outputs: 2,
    name: "cross_entropy",
  });
  const smooth = g.op("ReduceMean", [logp!], { keepdims: 0 }, { name: "cross_entropy_smooth" });
  const kept = g.op("Mul", [nll!, g.constant("cross_entropy_keep", f32([], [1 - eps]))]);
  const spread = g.op("Mul", [smooth, g.constant("cross_entropy_eps", f32([], [-eps]))]);
  return g.op("Add", [kept, spread], {}, { name: "cross_entropy_loss" });
}

/** Mean squared error: mean((pred − target)²) over every element. */
export function mseLoss(g: Graph, pred: string, target: string): string {
  const d = g.op("Sub", [pred, target], {}, { name: "mse_diff" });
  return g.op("ReduceMean", [g.op("Mul", [d, d])], { keepdims: 0 }, { name: "mse_loss" });
}

/**
 * Mean binary cross-entropy of logits x against targets y in [0, 1], in the stable form
 * softplus(x) − x·y = max(x, 0) − x·y + log(1 + e^−|x|) (ORT's Softplus computes it without overflow).
 */
export function bceWithLogitsLoss(g: Graph, logits: string, targets: string): string {
  const sp = g.op("Softplus", [logits], {}, { name: "bce_softplus" });
  const xy = g.op("Mul", [logits, targets], {}, { name: "bce_xy" });
  return g.op("ReduceMean", [g.op("Sub", [sp, xy])], { keepdims: 0 }, { name: "bce_loss" });
}
