import { numel } from "../onnx/tensor.js";
import type { NetModel } from "./model.js";

export interface LayerFlops {
  node: string;
  opType: string;
  /** Forward FLOPs per sample (2 per multiply-accumulate). */
  forward: number;
  /** True for the first weighted layer reading the input: its backward needs no input gradient. */
  first: boolean;
}

/**
 * Analytic FLOPs of a model's Conv and Gemm layers (the bulk of the work; elementwise ops, pooling and BN are not
 * counted). Per sample: forward Σ F; a training step F + Σ F (weight gradients) + Σ F over all but the first
 * layer (input gradients).
 */
export function modelFlops(net: NetModel): { layers: LayerFlops[]; forward: number; trainingStep: number } {
  const g = net.eval;
  const layers: LayerFlops[] = [];
  for (const n of g.nodes) {
    if (n.opType !== "Conv" && n.opType !== "Gemm") continue;
    const w = g.initializers.get(n.inputs[1]!)!;
    const outShape = g.valueInfo.get(n.outputs[0]!)?.shape?.slice(1) as number[] | undefined;
    if (!outShape) continue;
    // each output element takes fan-in MACs: W's dims[1..] (Conv [out, in/groups, kh, kw], Gemm [out, in])
    const macs = numel(outShape) * numel(w.dims.slice(1));
    layers.push({ node: n.name, opType: n.opType, forward: 2 * macs, first: n.inputs[0] === net.input });
  }
  const forward = layers.reduce((a, l) => a + l.forward, 0);
  const trainingStep = layers.reduce((a, l) => a + l.forward * (l.first ? 2 : 3), 0);
  return { layers, forward, trainingStep };
}
