import { attrFloat, type Graph, sortGraph } from "../onnx/ir.js";
import { f32, i64 } from "../onnx/tensor.js";

/**
 * Batch-norm folding (Jacob et al. 2018, §3.2). With σ = √(running_var + ε) and f = γ/σ per output channel:
 *   folded weight  w_f = w · f            (what is quantized and deployed)
 *   folded bias    b_f = β + (b − μ) · f  (b = 0 when the conv has none)
 * so Conv(x, w_f, b_f) = BN(Conv(x, w, b)) with BN in inference mode. During QAT with batch statistics the conv
 * runs on the quantized folded weight and its output is divided by f again before BatchNormalization normalises
 * with the batch's statistics (the batch-statistics correction: the same weights as deployment, the gradient and
 * the running statistics of training-mode BN); once statistics are frozen the folded form above is used.
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

export function foldedWeight(g: Graph, w: string, factor: string, rank: number, prefix: string): string {
  return g.op(
    "Mul",
    [w, perChannel(g, factor, rank - 1, `${prefix}.wf`)],
    {},
    {
      name: `${prefix}.fold_weight`,
      output: g.uniqueName(`${prefix}.weight_folded`),
    },
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
