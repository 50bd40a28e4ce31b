import { appendBackward } from "../autodiff/index.js";
import type { NetModel } from "../nn/model.js";
import { modelOf } from "../onnx/codec.js";
import { type Attr, Graph } from "../onnx/ir.js";
import { inferShapes } from "../onnx/shapes.js";
import { f32, type Tensor, tensor } from "../onnx/tensor.js";
import { appendOptimizer } from "../train/optimizers.js";
import type { CarriedValue, TrainingStep } from "../train/step.js";

/**
 * AdaRound's optimisation as ONNX graphs (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
 * Quantization"). For one layer with weight W, per-channel scale s and zero point z, the soft-quantized weight is
 *   W̃ = s · (clip(⌊W/s⌋ + z + h(V), qmin, qmax) − z),   h(V) = clip(σ(V)·(ζ − γ) + γ, 0, 1),  ζ = 1.1, γ = −0.1,
 * and V (shaped like W) is learned by gradient descent on
 *   L = mean over positions of Σ_channels (W̃x + b − y)²  +  λ·Σ (1 − |2h(V) − 1|^β),
 * y = the float layer output. The regulariser drives every h to 0 or 1; β falls from 20 to 2 (cosine) after a warm
 * start of 20% of the iterations with λ = 0, as in the paper's experiments (and AIMET). The whole step — forward,
 * loss, qat's autodiff, Adam from src/train/optimizers — is one graph, run by ORT through TrainingRunner.
 */
export const ZETA = 1.1;
export const GAMMA = -0.1;

export interface AdaRoundLayer {
  name: string;
  op: "Conv" | "Gemm";
  /** Attributes of the float layer's node (kernel, pads, strides, group; transA/transB, alpha, beta). */
  attrs: Record<string, Attr>;
  weightDims: number[];
  /** ⌊W/s⌋ + z per weight element (the division in float32, as QuantizeLinear). */
  floorQ: Float32Array;
  /** Scale and zero point, shaped to broadcast against W (per channel along its axis, or [1]). */
  scale: Tensor;
  zeroPoint: Tensor;
  qmin: number;
  qmax: number;
  /** The bias the layer adds (BN folded in when BN follows it). */
  bias?: Float32Array;
  /** One input sample's shape and one output sample's shape. */
  inputShape: number[];
  outputShape: number[];
  /** Multiplies the reconstruction term in the loss (1 / round-to-nearest's error: a unit-free loss). Default 1. */
  errorScale?: number;
  /**
   * The output only feeds a ReLU: compare outputs after it (the paper's f_a(W̃x) against f_a(Wx), Eq. 25), so no
   * rounding is spent on values the ReLU zeroes anyway.
   */
  relu?: boolean;
}

export interface AdaRoundSchedule {
  iterations: number;
  /** Regularisation weight λ (default 0.01). */
  lambda?: number;
  betaStart?: number;
  betaEnd?: number;
  /** Fraction of the iterations with λ = 0 (default 0.2). */
  warmStart?: number;
}

const k = (g: Graph, base: string, v: number): string =>
  g.constant(g.uniqueName(`adaround.${base}`), f32([], [v]));

/** h(V) = clip(σ(V)·(ζ − γ) + γ, 0, 1). */
export function appendRectifiedSigmoid(g: Graph, v: string): string {
  const stretched = g.op("Add", [
    g.op("Mul", [g.op("Sigmoid", [v]), k(g, "zeta_minus_gamma", ZETA - GAMMA)]),
    k(g, "gamma", GAMMA),
  ]);
  return g.op("Clip", [stretched, k(g, "zero", 0), k(g, "one", 1)]);
}

/** W̃ = s · (clip(⌊W/s⌋ + z + rounding, qmin, qmax) − z) for a rounding value (h(V) while learning, 0/1 after). */
export function appendQuantWeight(g: Graph, layer: AdaRoundLayer, rounding: string): string {
  const floorQ = g.constant(
    g.uniqueName(`${layer.name}.floor_q`),
    tensor("float32", layer.weightDims, layer.floorQ),
  );
  const s = g.constant(g.uniqueName(`${layer.name}.scale`), layer.scale);
  const z = g.constant(g.uniqueName(`${layer.name}.zero_point`), layer.zeroPoint);
  const q = g.op("Clip", [
    g.op("Add", [floorQ, rounding]),
    k(g, "qmin", layer.qmin),
    k(g, "qmax", layer.qmax),
  ]);
  return g.op("Mul", [g.op("Sub", [q, z]), s]);
}

/** The layer applied to `x` with weight `w` (and its folded bias). */
export function appendLayer(g: Graph, layer: AdaRoundLayer, x: string, w: string): string {
  const inputs = [x, w];
  if (layer.bias)
    inputs.push(g.constant(g.uniqueName(`${layer.name}.bias`), f32([layer.bias.length], layer.bias)));
  return g.op(layer.op, inputs, layer.attrs);
}

/** ŷ − y, after the ReLU when the layer's output feeds one. */
export function appendOutputError(g: Graph, layer: AdaRoundLayer, y: string, target: string): string {
  if (!layer.relu) return g.op("Sub", [y, target]);
  return g.op("Sub", [g.op("Relu", [y]), g.op("Relu", [target])]);
}

/**
 * The AdaRound loss for V: returns the total loss and its reconstruction term. `beta` and `regWeight` are values of
 * the graph (constants or computed from the step counter); they carry no gradient.
 */
export function appendAdaRoundLoss(
  g: Graph,
  layer: AdaRoundLayer,
  io: { v: string; x: string; target: string; beta: string; regWeight: string },
): { loss: string; reconstruction: string } {
  const h = appendRectifiedSigmoid(g, io.v);
  const y = appendLayer(g, layer, io.x, appendQuantWeight(g, layer, h));
  const d = appendOutputError(g, layer, y, io.target);
  const axes = g.constant(g.uniqueName("adaround.channel_axis"), tensor("int64", [1], [1]));
  const perPosition = g.op("ReduceSum", [g.op("Mul", [d, d]), axes], { keepdims: 0 });
  let reconstruction = g.op("ReduceMean", [perPosition], { keepdims: 0 });
  if (layer.errorScale !== undefined && layer.errorScale !== 1)
    reconstruction = g.op("Mul", [reconstruction, k(g, "error_scale", layer.errorScale)]);
  const twoHm1 = g.op("Abs", [g.op("Sub", [g.op("Mul", [h, k(g, "two", 2)]), k(g, "one", 1)])]);
  const reg = g.op("ReduceSum", [g.op("Sub", [k(g, "one", 1), g.op("Pow", [twoHm1, io.beta])])], {
    keepdims: 0,
  });
  const loss = g.op("Add", [reconstruction, g.op("Mul", [reg, io.regWeight])]);
  return { loss, reconstruction };
}

/**
 * β and λ of iteration t (the step counter, from 1): λ = 0 during the warm start, then β = β_end + ½(β_start −
 * β_end)(1 + cos(π·u)), u = (t − warm)/(T − warm) clipped to [0, 1].
 */
export function appendBetaSchedule(
  g: Graph,
  step: string,
  sch: AdaRoundSchedule,
): { beta: string; regWeight: string } {
  const T = sch.iterations;
  const warm = Math.floor((sch.warmStart ?? 0.2) * T);
  const [b0, b1] = [sch.betaStart ?? 20, sch.betaEnd ?? 2];
  const u = g.op("Clip", [
    g.op("Div", [g.op("Sub", [step, k(g, "warm", warm)]), k(g, "span", Math.max(T - warm, 1))]),
    k(g, "zero", 0),
    k(g, "one", 1),
  ]);
  const cos = g.op("Cos", [g.op("Mul", [u, k(g, "pi", Math.PI)])]);
  const beta = g.op("Add", [
    k(g, "beta_end", b1),
    g.op("Mul", [k(g, "half_span", 0.5 * (b0 - b1)), g.op("Add", [k(g, "one", 1), cos])]),
  ]);
  const regWeight = g.op("Where", [
    g.op("Greater", [step, k(g, "warm", warm)]),
    k(g, "lambda", sch.lambda ?? 0.01),
    k(g, "zero", 0),
  ]);
  return { beta, regWeight };
}

/** The value of V for which h(V) equals the fractional part W/s − ⌊W/s⌋ (σ(V) = (frac − γ)/(ζ − γ)). */
export function initialV(frac: Float32Array): Float32Array {
  return frac.map((f) => {
    const p = (f - GAMMA) / (ZETA - GAMMA);
    return Math.log(p / (1 - p));
  });
}

/**
 * One AdaRound training step of a layer: inputs V (carried), `x` (a batch of the layer's inputs), `labels` (the float
 * outputs it must reproduce), `lr`, `step`; Adam on V. Shaped as a TrainingStep with an MSE-like loss so qat's
 * TrainingRunner runs it (it checks `x` against the layer's input shape and the targets' batch).
 */
export function buildAdaRoundStep(
  layer: AdaRoundLayer,
  v0: Float32Array,
  sch: AdaRoundSchedule,
): TrainingStep {
  const g = new Graph();
  g.name = `adaround-${layer.name}`;
  const V = "adaround.V";
  g.inputs.push(
    { name: V, dtype: "float32", shape: [...layer.weightDims] },
    { name: "x", dtype: "float32", shape: ["batch", ...layer.inputShape] },
    { name: "labels", dtype: "float32", shape: ["batch", ...layer.outputShape] },
    { name: "lr", dtype: "float32", shape: [] },
    { name: "step", dtype: "float32", shape: [] },
  );
  const { beta, regWeight } = appendBetaSchedule(g, "step", sch);
  const { loss, reconstruction } = appendAdaRoundLoss(g, layer, {
    v: V,
    x: "x",
    target: "labels",
    beta,
    regWeight,
  });
  inferShapes(g);
  const grads = appendBackward(g, loss, [V]);
  const opt = appendOptimizer(
    g,
    { kind: "adam" },
    [{ name: V, grad: grads.get(V)!, dims: layer.weightDims }],
    {
      lr: "lr",
      step: "step",
    },
  );
  const init = f32(layer.weightDims, v0);
  const carried: CarriedValue[] = [{ name: V, next: opt.next.get(V)!, kind: "param", init }];
  for (const s of opt.state)
    carried.push({ name: s.name, next: opt.next.get(s.name)!, kind: "optimizer", init: s.init });
  g.outputs.push(
    { name: loss, dtype: "float32", shape: [] },
    { name: reconstruction, dtype: "float32", shape: [] },
  );
  for (const c of carried) g.outputs.push({ name: c.next, dtype: "float32", shape: [...c.init.dims] });
  // the runner needs a NetModel only for the input's name and per-sample shape
  const net: NetModel = {
    name: g.name,
    train: g,
    eval: g,
    input: "x",
    inputShape: layer.inputShape,
    output: "labels",
    params: [V],
    buffers: [],
    updates: new Map(),
  };
  return {
    model: modelOf(g),
    net,
    carried,
    x: "x",
    labels: "labels",
    lr: "lr",
    step: "step",
    loss,
    lossSpec: { kind: "mse" },
  };
}
