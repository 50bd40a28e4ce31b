import { f32, numel, type Tensor } from "../onnx/tensor.js";
import type { Rng } from "../util/rng.js";

/** PyTorch's fan-in of a weight: dims[1] × the receptive field (Linear [out, in], Conv [out, in/groups, kh, kw]). */
export function fanIn(dims: readonly number[]): number {
  if (dims.length < 2) throw new Error(`fan-in needs a weight of rank ≥ 2, got [${dims}]`);
  return dims[1]! * numel(dims.slice(2));
}

/**
 * torch.nn.init.kaiming_uniform_ with leaky_relu gain: bound = gain·√(3/fan_in), gain = √(2/(1+a²)). With
 * a = √5 (the default of nn.Linear and nn.Conv2d) the bound is 1/√fan_in.
 */
export function kaimingUniform(rng: Rng, dims: number[], a = Math.sqrt(5)): Tensor {
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fanIn(dims));
  return f32(dims, rng.uniformArray(numel(dims), -bound, bound));
}

/** The default bias of nn.Linear / nn.Conv2d: uniform(±1/√fan_in of the weight). */
export function biasUniform(rng: Rng, n: number, weightDims: number[]): Tensor {
  const fan = fanIn(weightDims);
  const bound = fan > 0 ? 1 / Math.sqrt(fan) : 0;
  return f32([n], rng.uniformArray(n, -bound, bound));
}

export const filled = (dims: number[], v: number): Tensor => f32(dims, new Float32Array(numel(dims)).fill(v));
