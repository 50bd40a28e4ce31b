import type { Dataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { loadStateDict, type NetModel } from "../nn/model.js";
import { modelOf } from "../onnx/codec.js";
import { cloneGraph } from "../onnx/ir.js";
import { type Tensor, tensor, toFloat32 } from "../onnx/tensor.js";
import { openSession, run } from "../runtime/session.js";
import { effectiveWeight } from "./calibrate.js";
import { fakeQuantize } from "./fake-quant.js";
import { type Placement, placeQuant, type WeightPoint } from "./placement.js";
import type { QConfig } from "./qconfig.js";
import { weightQParams } from "./qparams.js";

/**
 * Empirical bias correction (Nagel et al. 2019, §4.2, the empirical variant): quantizing a layer's weight W to W_q
 * shifts the mean of its output channel c by E[(W_q x)_c] − E[(W x)_c] = E[(ΔW x)_c], ΔW = W_q − W, which the next
 * layers see as a bias error (it does not average out: it is the same on every sample). The expectation is measured
 * on calibration batches, x being the layer's input in the float model, and subtracted from the layer's bias: from
 * BN's β when BN is folded into the layer (β enters the folded bias as is), from the layer's bias otherwise, and a
 * layer without one gets a bias parameter `<layer>.bias`. Weight-only: activation quantization is not modelled.
 */
export interface BiasCorrectionOptions {
  placement?: Placement;
  qconfig?: QConfig;
  /**
   * The quantized weights to correct for, as parameter values on the grid (AdaRound's `weights`, with its `qparams`).
   * Default: round-to-nearest of each weight with the placement's weight observer.
   */
  quantized?: { weights: Map<string, Tensor>; qparams: Map<string, Tensor> };
  /** Calibration batches (default 16) of `batchSize` (default 64). */
  batches?: number;
  batchSize?: number;
  seed?: number;
  threads?: number;
}

export interface BiasCorrectionResult {
  /** A new model (the input is not changed) with corrected biases. */
  model: NetModel;
  /** Per layer: the measured mean output shift per channel, and where it was subtracted. */
  layers: { layer: string; shift: Float32Array; into: string }[];
}

export async function correctBias(
  net: NetModel,
  calibration: Dataset,
  opts: BiasCorrectionOptions = {},
): Promise<BiasCorrectionResult> {
  if (!opts.placement && !opts.qconfig)
    throw new Error("bias correction needs a placement or a qconfig (e.g. preset('ort-cpu'))");
  const placement = opts.placement ?? placeQuant(net, opts.qconfig!);
  const points = placement.weights.filter((w) => w.op !== "MatMul");
  const g = cloneGraph(net.eval);
  g.outputs = [];
  const shiftOut = new Map<string, string>();
  const quantNet = opts.quantized ? withWeights(net, opts.quantized.weights) : undefined;
  for (const w of points) {
    const node = g.nodes.find((n) => n.name === w.node)!;
    const dims = [...net.eval.initializers.get(w.weight)!.dims];
    const delta = weightDelta(net, quantNet, w, dims, opts.quantized?.qparams);
    const dW = g.constant(`${w.layer}.bias_correction.delta`, tensor("float32", dims, delta));
    const y = g.op(w.op, [node.inputs[0]!, dW], { ...node.attrs }, { name: `${w.layer}.bias_correction` });
    const axes = w.op === "Conv" ? [0, ...dims.slice(2).map((_, i) => i + 2)] : [0];
    const m = g.op("ReduceMean", [y], { axes, keepdims: 0 }, { output: `${w.layer}.bias_correction.mean` });
    g.outputs.push({ name: m, dtype: "float32", shape: [dims[0]!] });
    shiftOut.set(w.layer, m);
  }
  const sums = new Map<string, Float64Array>();
  let count = 0;
  const session = await openSession(modelOf(g), { threads: opts.threads });
  try {
    const loader = new DataLoader(calibration, {
      batchSize: opts.batchSize ?? 64,
      seed: opts.seed ?? 0,
      shuffle: true,
    });
    let seen = 0;
    for await (const b of loader.epoch(0)) {
      const x: Tensor = { dtype: "float32", dims: [b.size, ...net.inputShape], data: b.x };
      const res = await run(session, { [net.input]: x });
      for (const [layer, name] of shiftOut) {
        const v = toFloat32(res[name]!);
        const s = sums.get(layer) ?? new Float64Array(v.length);
        for (let i = 0; i < v.length; i++) s[i]! += v[i]! * b.size;
        sums.set(layer, s);
      }
      count += b.size;
      if (++seen >= (opts.batches ?? 16)) break;
    }
  } finally {
    await session.release();
  }
  if (count === 0) throw new Error("bias correction: the calibration dataset is empty");
  return apply(net, points, sums, count);
}

function withWeights(net: NetModel, weights: Map<string, Tensor>): NetModel {
  const m: NetModel = { ...net, train: cloneGraph(net.train), eval: cloneGraph(net.eval) };
  loadStateDict(m, weights);
  return m;
}

/** Q(W) − W of the effective (BN-folded) weight. */
function weightDelta(
  net: NetModel,
  quantNet: NetModel | undefined,
  w: WeightPoint,
  dims: number[],
  qparams?: Map<string, Tensor>,
): Float32Array {
  const float = effectiveWeight(net, w);
  let q: Float32Array;
  if (quantNet && qparams?.has(w.scale)) q = effectiveWeight(quantNet, w);
  else {
    const p = weightQParams(float, dims, w.cfg, w.axis);
    q = fakeQuantize(
      float,
      dims,
      p.scale,
      p.zeroPoint,
      w.spec.qmin,
      w.spec.qmax,
      w.cfg.perChannel ? w.axis : -1,
    );
  }
  return q.map((v, i) => v - float[i]!);
}

function apply(
  net: NetModel,
  points: WeightPoint[],
  sums: Map<string, Float64Array>,
  count: number,
): BiasCorrectionResult {
  const model: NetModel = {
    ...net,
    train: cloneGraph(net.train),
    eval: cloneGraph(net.eval),
    params: [...net.params],
  };
  const state = new Map<string, Tensor>();
  const layers: BiasCorrectionResult["layers"] = [];
  for (const w of points) {
    const shift = Float32Array.from(sums.get(w.layer)!, (s) => s / count);
    const target = w.bn ? w.bn.beta : w.bias;
    if (target) {
      const b = toFloat32(net.eval.initializers.get(target)!).map((v, i) => v - shift[i]!);
      state.set(target, tensor("float32", [b.length], b));
      layers.push({ layer: w.layer, shift, into: target });
      continue;
    }
    // a layer without bias gets one, in both graphs, as a trainable parameter (export quantizes it as int32)
    const name = `${w.layer}.bias`;
    const t = tensor(
      "float32",
      [shift.length],
      shift.map((v) => -v),
    );
    for (const g of [model.train, model.eval]) {
      const node = g.nodes.find((n) => n.name === w.node);
      if (!node) continue;
      node.inputs[2] = name;
      g.initializers.set(name, t);
    }
    model.params.push(name);
    layers.push({ layer: w.layer, shift, into: name });
  }
  loadStateDict(model, state);
  return { model, layers };
}
