import { attrFloat, type Graph, sortGraph } from "../onnx/ir.js";
import { f32, i64 } from "../onnx/tensor.js";

/**
 * Batch-norm folding (Jacob et al. 2018, §3.2). With σ = √(running_var + ε) and f = γ/σ per output channel:
 *   folded weight  w_f = w · f            (what is quantized and deployed)
 *   folded bias    b_f = β + (b − μ) · f  (b = 0 when the conv has none)
 * so Conv(x, w_f, b_f) = BN(Conv(x, w, b)) with BN in inference mode. During QAT with batch statistics the conv
 * output made from the quantized folded weight is divided by f again, the bias added, and BatchNormalization
 * normalises with the batch's statistics (the batch-statistics correction: the same weights as deployment, the
 * gradient and the running statistics of training-mode BN); once statistics are frozen the folded form above is
 * used. The division is done on the weight, Conv(x, q(w_f) / f, b) = Conv(x, q(w_f)) / f + b, since each output
 * channel of a Conv is linear in that channel's weights: the same function (up to float rounding) at the cost of
 * a pass over the weight instead of one over the activation, forward and backward.
 * The nodes are emitted into the graph, so the fold follows γ, β, w and the running statistics as they train.
 */
export interface BnRef {
  gamma: string;
  beta: string;
  mean: string;
  variance: string;
  eps: number;
}

/** f = γ / √(var + ε), [C]. */
export function foldFactor(g: Graph, bn: BnRef, prefix: string): string {
  const eps = g.constant(`${prefix}.bn_eps`, f32([], [bn.eps]));
  const sigma = g.op(
    "Sqrt",
    [g.op("Add", [bn.variance, eps], {}, { name: `${prefix}.bn_var_eps` })],
    {},
    { name: `${prefix}.bn_sigma` },
  );
  return g.op(
    "Div",
    [bn.gamma, sigma],
    {},
    { name: `${prefix}.bn_factor`, output: g.uniqueName(`${prefix}.bn_factor`) },
  );
}

/** [C] → [C, 1, …] with `trailing` ones. */
export function perChannel(g: Graph, v: string, trailing: number, prefix: string): string {
  const axes = g.constant(
    `${prefix}.axes`,
    i64(
      [trailing],
      Array.from({ length: trailing }, (_, i) => i + 1),
    ),
  );
  return g.op("Unsqueeze", [v, axes], {}, { name: `${prefix}.unsqueeze` });
}

/** f as [C, 1, …] against a weight of `rank` whose output channels come first. */
export function weightFactor(g: Graph, factor: string, rank: number, prefix: string): string {
  return perChannel(g, factor, rank - 1, `${prefix}.wf`);
}

/** w · f per output channel; `broadcast` is f from `weightFactor` when the caller has it already. */
export function foldedWeight(
  g: Graph,
  w: string,
  factor: string,
  rank: number,
  prefix: string,
  broadcast = weightFactor(g, factor, rank, prefix),
): string {
  return g.op(
    "Mul",
    [w, broadcast],
    {},
    {
      name: `${prefix}.fold_weight`,
      output: g.uniqueName(`${prefix}.weight_folded`),
    },
  );
}

/** The (quantized) folded weight divided by f again, `broadcast` from `weightFactor`: Conv(x, it) = Conv(x, w)/f. */
export function unfoldedWeight(g: Graph, wq: string, broadcast: string, prefix: string): string {
  return g.op(
    "Div",
    [wq, broadcast],
    {},
    { name: `${prefix}.unfold_weight`, output: g.uniqueName(`${prefix}.weight_unfolded`) },
  );
}

export function foldedBias(
  g: Graph,
  bias: string | undefined,
  bn: BnRef,
  factor: string,
  prefix: string,
): string {
  const centred = bias
    ? g.op("Sub", [bias, bn.mean], {}, { name: `${prefix}.fold_bias_sub` })
    : g.op("Neg", [bn.mean], {}, { name: `${prefix}.fold_bias_neg` });
  return g.op(
    "Add",
    [g.op("Mul", [centred, factor], {}, { name: `${prefix}.fold_bias_mul` }), bn.beta],
    {},
    {
      name: `${prefix}.fold_bias`,
      output: g.uniqueName(`${prefix}.bias_folded`),
    },
  );
}

/**
 * Fold every Conv whose only consumer is an inference-mode BatchNormalization into that Conv (float, no
 * quantization): the BN node disappears and the Conv writes the BN's output. Returns the number folded.
 */
export function foldBatchNorms(g: Graph): number {
  const consumers = g.consumers();
  const producers = g.producers();
  let folded = 0;
  for (const bnNode of [...g.nodes]) {
    if (
      bnNode.opType !== "BatchNormalization" ||
      (bnNode.attrs.training_mode?.type === "int" && bnNode.attrs.training_mode.value === 1)
    )
      continue;
    const conv = producers.get(bnNode.inputs[0]!);
    if (conv?.opType !== "Conv" || (consumers.get(conv.outputs[0]!) ?? []).length !== 1) continue;
    const w = conv.inputs[1]!;
    const rank = g.initializers.get(w)?.dims.length ?? g.valueInfo.get(w)?.shape?.length ?? 4;
    const bn: BnRef = {
      gamma: bnNode.inputs[1]!,
      beta: bnNode.inputs[2]!,
      mean: bnNode.inputs[3]!,
      variance: bnNode.inputs[4]!,
      eps: attrFloat(bnNode, "epsilon", 1e-5),
    };
    const prefix = w.replace(/\.weight$/, "");
    const f = foldFactor(g, bn, prefix);
    const wf = foldedWeight(g, w, f, rank, prefix);
    const bf = foldedBias(g, conv.inputs[2] || undefined, bn, f, prefix);
    conv.inputs = [conv.inputs[0]!, wf, bf];
    conv.outputs = [bnNode.outputs[0]!];
    g.nodes = g.nodes.filter((n) => n !== bnNode);
    folded++;
  }
  g.invalidate();
  sortGraph(g);
  return folded;
}
