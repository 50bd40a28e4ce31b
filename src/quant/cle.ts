import { loadStateDict, type NetModel } from "../nn/model.js";
import { attrFloat, attrInt, cloneGraph, type Graph, type Node, topologicalOrder } from "../onnx/ir.js";
import { type Tensor, tensor, toFloat32 } from "../onnx/tensor.js";

/**
 * Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
 * Correction", §4.1). For two layers A → f → B where f is positively homogeneous per channel (f(x/s) = f(x)/s for
 * s > 0), output channel i of A can be divided by s_i and input channel i of B multiplied by s_i without changing the
 * float function. Choosing s_i = √(r1_i · r2_i) / r2_i (r = the channel's weight range, max |w|) gives both channels
 * the range √(r1_i · r2_i), which minimises the loss of precision of per-tensor weight quantization of the pair;
 * with chains (A → B → C) the pairs are swept again until the scales stop moving.
 *
 * What may sit between A and B (each value read by exactly one node, none a graph output):
 * - BatchNormalization after A (inference form): A's effective weight is the folded W·γ/√(σ²+ε), and dividing
 *   channel i by s_i is done on γ_i and β_i (exact: BN's output is linear in γ and β), so the folded weight and bias
 *   both shrink by s_i;
 * - Relu, LeakyRelu, PRelu: positively homogeneous for s > 0 (max(x/s, a·x/s) = max(x, a·x)/s);
 * - MaxPool: the max of values divided by the same positive s_i is the max divided by s_i; Identity;
 * - Clip(x, 0) with no upper bound (a ReLU).
 * ReLU6 / Clip(x, 0, c) is NOT homogeneous: after the rescale the pair computes s·clip(y/s, 0, c) = clip(y, 0, c·s),
 * which differs from clip(y, 0, c) wherever y > min(c, c·s) — for s > 1 exactly where the original saturates, for
 * s < 1 already from c·s on. No choice of s ≠ 1 is exact for every input, so such pairs are left alone unless the
 * caller gives the per-channel maxima of the value entering the Clip on its data (`clipInputMax`): a channel whose
 * observed maximum exceeds c keeps s = 1, and the others take s_i ≥ max_i / c so the new ceiling c·s_i stays above
 * everything observed (then the function is unchanged on inputs within the observed ranges, not on all inputs).
 * Layers: Conv (any group count, so depthwise → pointwise, the pair that matters for MobileNet/BlazeFace) and Gemm.
 *
 * Data-aware (`inputMax`): r1_i is instead the observed max |x| of channel i of the activation the second layer reads
 * (divided by the scales applied so far). The first layer's weight range stands in for that range only under
 * per-tensor weights; with per-channel weights it costs nothing, while the per-tensor activation between the layers
 * does (docs/decisions.md, "CLE evens what the data shows").
 */
export interface CleOptions {
  /** Sweeps over all pairs at most (default 100). */
  maxIterations?: number;
  /** Stop when every |log s_i| of a sweep is below this (default 1e-6). */
  tolerance?: number;
  /** Per-channel maximum of the value entering a Clip with an upper bound (ReLU6), observed on the user's data. */
  clipInputMax?: Map<string, Float32Array>;
  /**
   * Per-channel max |x| of the value entering a pair's second layer, observed on the user's data. When given for a
   * pair, its r1 is that range (divided by the scales applied so far) instead of the first layer's weight range.
   */
  inputMax?: Map<string, Float32Array>;
}

export interface ClePair {
  first: string;
  second: string;
  /** Ops between the two layers. */
  between: string[];
  /** Smallest and largest cumulative scale applied. */
  scaleMin: number;
  scaleMax: number;
  /** max_i |ln(r1_i / r2_i)|: how unequal the two layers' ranges of a channel are, before and after (0 = equal). */
  imbalanceBefore: number;
  imbalanceAfter: number;
  /** The value between the two layers that the second one reads. */
  input: string;
}

export interface CleResult {
  model: NetModel;
  pairs: ClePair[];
  /** Candidate pairs left alone, with the reason. */
  skipped: { first: string; second: string; reason: string }[];
  iterations: number;
}

export class CleError extends Error {
  override name = "CleError";
}

interface Side {
  node: Node;
  weight: string;
  bias?: string;
  /** BN following the layer (first layer: its γ/β are rescaled; second layer: it only scales the folded range). */
  bn?: { gamma: string; beta: string; variance: string; eps: number };
}

interface Pair {
  a: Side;
  b: Side;
  between: string[];
  clip?: { value: string; max: number };
  /** The value entering the second layer (the activation quantized between the two). */
  input: string;
  total: Float64Array;
  imbalanceBefore: number;
}

const HOMOGENEOUS = new Set(["Relu", "LeakyRelu", "PRelu", "MaxPool", "Identity"]);

/** Equalize every eligible pair of a float model; returns a new model (the input is not changed). */
export function equalizeCrossLayer(net: NetModel, opts: CleOptions = {}): CleResult {
  const g = net.eval;
  const params = new Set(net.params);
  const values = new Map<string, Float32Array>();
  const get = (k: string): Float32Array => {
    let v = values.get(k);
    if (!v) {
      const t = g.initializers.get(k);
      if (!t) throw new CleError(`parameter '${k}' is missing from model '${net.name}'`);
      v = toFloat32(t).slice();
      values.set(k, v);
    }
    return v;
  };
  const { pairs, skipped } = findPairs(g, params, opts);
  for (const p of pairs) p.imbalanceBefore = imbalance(p, g, get, opts);
  let iterations = 0;
  const maxIter = opts.maxIterations ?? 100;
  const tol = opts.tolerance ?? 1e-6;
  for (; iterations < maxIter && pairs.length > 0; ) {
    iterations++;
    let worst = 0;
    for (const p of pairs) worst = Math.max(worst, equalizePair(p, g, get, opts));
    if (worst < tol) break;
  }
  const model: NetModel = { ...net, train: cloneGraph(net.train), eval: cloneGraph(net.eval) };
  const state = new Map<string, Tensor>();
  for (const [k, v] of values) state.set(k, tensor("float32", [...g.initializers.get(k)!.dims], v));
  loadStateDict(model, state);
  const report = pairs.map((p) => ({
    first: layerOf(p.a),
    second: layerOf(p.b),
    between: p.between,
    scaleMin: Math.min(...p.total),
    scaleMax: Math.max(...p.total),
    imbalanceBefore: p.imbalanceBefore,
    imbalanceAfter: imbalance(p, g, get, opts),
    input: p.input,
  }));
  return { model, pairs: report, skipped, iterations };
}

/** What each pair's second layer reads: the values whose per-channel ranges data-aware CLE takes (`inputMax`). */
export function clePairInputs(net: NetModel, opts: Pick<CleOptions, "clipInputMax"> = {}): string[] {
  return findPairs(net.eval, new Set(net.params), opts).pairs.map((p) => p.input);
}

const layerOf = (s: Side) => s.weight.replace(/\.weight$/, "");

function findPairs(
  g: Graph,
  params: Set<string>,
  opts: CleOptions,
): { pairs: Pair[]; skipped: CleResult["skipped"] } {
  const consumers = g.consumers();
  const outputs = new Set(g.outputs.map((o) => o.name));
  const isLayer = (n: Node) =>
    (n.opType === "Conv" || n.opType === "Gemm") &&
    params.has(n.inputs[1]!) &&
    (n.domain === "" || n.domain === "ai.onnx");
  const only = (v: string): Node | undefined => {
    const c = consumers.get(v) ?? [];
    return c.length === 1 && !outputs.has(v) ? c[0] : undefined;
  };
  const constNum = (v: string | undefined): number | undefined => {
    const t = v ? g.initializers.get(v) : undefined;
    return t && !params.has(v!) && t.data.length === 1 ? Number(toFloat32(t)[0]) : undefined;
  };
  const pairs: Pair[] = [];
  const skipped: CleResult["skipped"] = [];
  for (const n of topologicalOrder(g)) {
    if (!isLayer(n)) continue;
    if (n.opType === "Gemm" && (attrInt(n, "transB", 0) !== 1 || attrInt(n, "transA", 0) !== 0)) continue;
    const a: Side = side(g, n, params);
    let v = n.outputs[0]!;
    let next = only(v);
    if (next?.opType === "BatchNormalization") {
      a.bn = bnOf(next);
      v = next.outputs[0]!;
      next = only(v);
    }
    const between: string[] = [];
    let clip: Pair["clip"];
    let reason = "";
    while (next && !isLayer(next)) {
      if (next.opType === "Clip") {
        const lo = constNum(next.inputs[1]);
        const hi = next.inputs[2] ? constNum(next.inputs[2]) : Number.POSITIVE_INFINITY;
        if (lo !== 0 || hi === undefined || clip) {
          reason = `Clip '${next.name}' has a bound other than [0, c]`;
          break;
        }
        if (Number.isFinite(hi)) clip = { value: v, max: hi };
      } else if (!HOMOGENEOUS.has(next.opType)) {
        reason = `'${next.name}' (${next.opType}) is not positively homogeneous`;
        break;
      }
      between.push(next.opType);
      v = next.outputs[0]!;
      next = only(v);
    }
    if (!next || !isLayer(next) || next.inputs[0] !== v) continue;
    const b = side(g, next, params);
    const second = only(next.outputs[0]!);
    if (second?.opType === "BatchNormalization") b.bn = bnOf(second);
    const names = { first: layerOf(a), second: layerOf(b) };
    if (reason) {
      skipped.push({ ...names, reason });
      continue;
    }
    if (outChannels(g, a) !== inChannels(g, b)) {
      skipped.push({ ...names, reason: "the channel counts do not match (a reshape between them)" });
      continue;
    }
    if (clip && !opts.clipInputMax?.has(clip.value)) {
      skipped.push({
        ...names,
        reason: `ReLU6/Clip(0, ${clip.max}) between them is not positively homogeneous; give the per-channel maxima of '${clip.value}' (clipInputMax) to equalize within the observed ranges`,
      });
      continue;
    }
    if (b.node.opType === "Gemm" && attrInt(b.node, "transA", 0) !== 0) continue;
    pairs.push({
      a,
      b,
      between,
      clip,
      input: v,
      total: new Float64Array(outChannels(g, a)).fill(1),
      imbalanceBefore: 0,
    });
  }
  return { pairs, skipped };
}

function side(g: Graph, n: Node, params: Set<string>): Side {
  const bias = n.inputs[2] && params.has(n.inputs[2]) ? n.inputs[2] : undefined;
  if (n.inputs[2] && !bias && g.initializers.has(n.inputs[2])) {
    throw new CleError(`layer '${n.name}': its bias '${n.inputs[2]}' is a constant, not a parameter`);
  }
  return { node: n, weight: n.inputs[1]!, bias };
}

function bnOf(n: Node): Side["bn"] {
  return {
    gamma: n.inputs[1]!,
    beta: n.inputs[2]!,
    variance: n.inputs[4]!,
    eps: attrFloat(n, "epsilon", 1e-5),
  };
}

const dimsOf = (g: Graph, k: string) => g.initializers.get(k)!.dims;
const outChannels = (g: Graph, s: Side) => dimsOf(g, s.weight)[0]!;
function inChannels(g: Graph, s: Side): number {
  const d = dimsOf(g, s.weight);
  if (s.node.opType === "Gemm") return attrInt(s.node, "transB", 0) ? d[1]! : d[0]!;
  return d[1]! * attrInt(s.node, "group", 1);
}

/** γ/√(σ²+ε) per output channel of a layer followed by BN (its folding factor), else ones. */
function bnFactor(s: Side, channels: number, get: (k: string) => Float32Array): Float64Array {
  const f = new Float64Array(channels).fill(1);
  if (!s.bn) return f;
  const gamma = get(s.bn.gamma);
  const variance = get(s.bn.variance);
  for (let c = 0; c < channels; c++) f[c] = gamma[c]! / Math.sqrt(variance[c]! + s.bn.eps);
  return f;
}

/** r1: max |folded weight| of each output channel of the first layer (rows of W: Conv, and Gemm with transB=1). */
function firstRanges(a: Side, g: Graph, get: (k: string) => Float32Array): Float64Array {
  const w = get(a.weight);
  const c = outChannels(g, a);
  const per = w.length / c;
  const f = bnFactor(a, c, get);
  const r = new Float64Array(c);
  for (let i = 0; i < c; i++) {
    let m = 0;
    for (let k = 0; k < per; k++) m = Math.max(m, Math.abs(w[i * per + k]!));
    r[i] = m * Math.abs(f[i]!);
  }
  return r;
}

/** Visit every element of the second layer's weight that multiplies input channel i: fn(index, output channel). */
function forInput(b: Side, g: Graph, i: number, fn: (idx: number, o: number) => void): void {
  const d = dimsOf(g, b.weight);
  if (b.node.opType === "Gemm") {
    if (attrInt(b.node, "transB", 0)) for (let o = 0; o < d[0]!; o++) fn(o * d[1]! + i, o);
    else for (let o = 0; o < d[1]!; o++) fn(i * d[1]! + o, o);
    return;
  }
  const groups = attrInt(b.node, "group", 1);
  const [outC, inPer] = [d[0]!, d[1]!];
  const spatial = d.slice(2).reduce((x, y) => x * y, 1);
  const grp = Math.floor(i / inPer);
  const local = i % inPer;
  const outPer = outC / groups;
  for (let o = grp * outPer; o < (grp + 1) * outPer; o++) {
    const base = (o * inPer + local) * spatial;
    for (let k = 0; k < spatial; k++) fn(base + k, o);
  }
}

/** r2: max |folded weight| over the second layer's weights reading each input channel. */
function secondRanges(p: Pair, g: Graph, get: (k: string) => Float32Array): Float64Array {
  const w2 = get(p.b.weight);
  const d2 = dimsOf(g, p.b.weight);
  const f2 = bnFactor(
    p.b,
    p.b.node.opType === "Gemm" && !attrInt(p.b.node, "transB", 0) ? d2[1]! : d2[0]!,
    get,
  );
  const r = new Float64Array(outChannels(g, p.a));
  for (let i = 0; i < r.length; i++) {
    forInput(p.b, g, i, (idx, o) => {
      r[i] = Math.max(r[i]!, Math.abs(w2[idx]! * f2[o]!));
    });
  }
  return r;
}

/** One equalization of a pair; returns the largest |log s_i| applied. */
function equalizePair(p: Pair, g: Graph, get: (k: string) => Float32Array, opts: CleOptions): number {
  const c = outChannels(g, p.a);
  const r1 = pairRanges(p, g, get, opts);
  const r2 = secondRanges(p, g, get);
  const w2 = get(p.b.weight);
  const clipMax = p.clip ? opts.clipInputMax!.get(p.clip.value)! : undefined;
  const wa = get(p.a.weight);
  const per = wa.length / c;
  let worst = 0;
  for (let i = 0; i < c; i++) {
    if (!(r1[i]! > 0) || !(r2[i]! > 0)) continue;
    let s = Math.sqrt(r1[i]! * r2[i]!) / r2[i]!;
    if (clipMax && p.clip) {
      // exact on the observed data iff the original never saturates (max ≤ c) and the new ceiling c·S_i (S_i the
      // cumulative scale) stays above the observed maximum: S_i ≥ max / c
      if (clipMax[i]! > p.clip.max) continue;
      s = Math.max(s, clipMax[i]! / (p.clip.max * p.total[i]!));
    }
    if (s === 1) continue;
    worst = Math.max(worst, Math.abs(Math.log(s)));
    p.total[i]! *= s;
    if (p.a.bn) {
      get(p.a.bn.gamma)[i]! /= s;
      get(p.a.bn.beta)[i]! /= s;
    } else {
      for (let k = 0; k < per; k++) wa[i * per + k]! /= s;
      if (p.a.bias) get(p.a.bias)[i]! /= s;
    }
    forInput(p.b, g, i, (idx) => {
      w2[idx]! *= s;
    });
  }
  return worst;
}

/** r1 of a pair: the observed range of the value between the layers when known (as rescaled so far), else A's weights'. */
function pairRanges(p: Pair, g: Graph, get: (k: string) => Float32Array, opts: CleOptions): Float64Array {
  const seen = opts.inputMax?.get(p.input);
  if (!seen) return firstRanges(p.a, g, get);
  return Float64Array.from(p.total, (t, i) => seen[i]! / t);
}

function imbalance(p: Pair, g: Graph, get: (k: string) => Float32Array, opts: CleOptions = {}): number {
  const r1 = pairRanges(p, g, get, opts);
  const r2 = secondRanges(p, g, get);
  let m = 0;
  for (let i = 0; i < r1.length; i++)
    if (r1[i]! > 0 && r2[i]! > 0) m = Math.max(m, Math.abs(Math.log(r1[i]! / r2[i]!)));
  return m;
}
