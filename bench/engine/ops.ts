/**
 * Micro-benchmark of the backward pass's costliest pieces, to see what bounds a training step. Sections:
 * - dw: every dW way of the Conv rule (src/autodiff/rules/conv-weight-grad.ts, and the batch-contraction Conv)
 *   as the rule emits it, at the Conv layer shapes of cifar-cnn, resnet8 and mobilenet-tiny (batch 64), with the
 *   largest difference of each way's result from the first one's;
 * - fwd: a forward Conv + ReLU with its weight constant (forward-only sessions) vs a graph input (the training
 *   step), and the rule's dX graph, at the same shapes;
 * - pool: MaxPool with/without Indices, MaxPool forward + gradient by Indices/ScatterElements against the mask
 *   ways, and whether preallocated outputs save anything.
 * Each variant is its own ORT session; time per run is the median of several windows.
 *
 *   npm run build && node dist/bench/engine/ops.js [--threads 2] [--sections dw,fwd,pool]
 */
import * as ort from "onnxruntime-node";
import {
  appendBackward,
  GradContext,
  type GradientRule,
  registerGradientRule,
} from "../../src/autodiff/index.js";
import { convRules } from "../../src/autodiff/rules/conv.js";
import type { ConvGeometry } from "../../src/autodiff/rules/conv-geometry.js";
import { convGeometry, convWeightGrad } from "../../src/autodiff/rules/conv-geometry.js";
import {
  IM2COL_MAX_ELEMENTS,
  WEIGHT_GRAD_WAYS,
  type WeightGradWay,
} from "../../src/autodiff/rules/conv-weight-grad.js";
import { zooModel } from "../../src/nn/zoo.js";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { inferShapes } from "../../src/onnx/shapes.js";
import { i64, numel } from "../../src/onnx/tensor.js";
import { openSession, toOrt } from "../../src/runtime/session.js";
import { buildTrainingStep } from "../../src/train/step.js";
import { Rng } from "../../src/util/rng.js";
import { stepBatches } from "../random-data.js";

const ti = process.argv.indexOf("--threads");
const threads = ti > 0 ? Number(process.argv[ti + 1]) : 2;
const si = process.argv.indexOf("--sections");
const oi = process.argv.indexOf("--optimization");
const optimization = (oi > 0 ? process.argv[oi + 1] : "all") as "disabled" | "basic" | "extended" | "all";
const sections = new Set((si > 0 ? process.argv[si + 1]! : "dw,fwd,pool").split(","));

async function timeGraph(
  g: Graph,
  feeds: Record<string, ort.Tensor>,
): Promise<{ ms: number; out: Float32Array }> {
  const s = await ort.InferenceSession.create(encodeModel(modelOf(g)), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: optimization,
  });
  const known = new Set(s.inputNames);
  const used = Object.fromEntries(Object.entries(feeds).filter(([k]) => known.has(k)));
  let out: Float32Array = new Float32Array(0);
  for (let i = 0; i < 5; i++) out = (await s.run(used))[s.outputNames[0]!]!.data as Float32Array;
  const times: number[] = [];
  for (let w = 0; w < 5; w++) {
    let k = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 300) {
      await s.run(used);
      k++;
    }
    times.push((performance.now() - t0) / k);
  }
  await s.release();
  return { ms: times.sort((a, b) => a - b)[2]!, out };
}

function random(dims: number[], seed: number): ort.Tensor {
  const r = new Rng(seed);
  const d = new Float32Array(numel(dims));
  for (let i = 0; i < d.length; i++) d[i] = r.uniform(-1, 1);
  return new ort.Tensor("float32", d, dims);
}

/** End padding so that the last window's last step lands inside (never more than the forward's own). */
function tightPadEnd(geo: ConvGeometry): number[] {
  return geo.kernel.map((k, i) =>
    Math.max(
      0,
      geo.dilations[i]! * (k - 1) +
        geo.strides[i]! * (geo.outSize[i]! - 1) +
        1 -
        geo.inSize[i]! -
        geo.padBegin[i]!,
    ),
  );
}

/**
 * The Conv rule's dW way before issue 17, kept here as the baseline: dW of a 2-D, group-1 Conv (any stride, pads,
 * dilation) by im2col and one Gemm: the k_h·k_w windows of the padded
 * input, channels first ([C, N, H', W']; window (i, j) starts at (i·d_h, j·d_w) and steps by the strides), are
 * stacked to cols [C·k_h·k_w, N·H_o·W_o], and dW = dYᵀ [M, N·H_o·W_o] · colsᵀ, reshaped to [M, C, k_h, k_w].
 * One Gemm per window instead of the Concat was measured no faster on cifar-cnn's layers and 2–3× slower with
 * few input channels (many small Gemms).
 */
const im2colWeightGrad: WeightGradWay = (c, x, dy, geo, group, ws) => {
  const batch = c.shape(x)?.[0];
  const n = typeof batch === "number" ? batch : 1;
  if (ws.length !== 4 || group !== 1) return undefined;
  if (ws[1]! * ws[2]! * ws[3]! * numel(geo.outSize) * n > IM2COL_MAX_ELEMENTS) return undefined;
  const [co, ci, kh, kw] = ws as [number, number, number, number];
  const [ho, wo] = geo.outSize as [number, number];
  const padEnd = tightPadEnd(geo);
  const xt = c.op("Transpose", [x], { perm: [1, 0, 2, 3] });
  const padded = [...geo.padBegin, ...padEnd].some((p) => p !== 0)
    ? c.op("Pad", [xt, c.int64s([0, 0, geo.padBegin[0]!, geo.padBegin[1]!, 0, 0, padEnd[0]!, padEnd[1]!])])
    : xt;
  const strided = geo.strides.some((s) => s !== 1);
  const cols: string[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const [oi, oj] = [i * geo.dilations[0]!, j * geo.dilations[1]!];
      const end = [oi + geo.strides[0]! * (ho - 1) + 1, oj + geo.strides[1]! * (wo - 1) + 1];
      if (kh * kw === 1 && !strided && [...geo.padBegin, ...padEnd].every((p) => p === 0)) {
        cols.push(padded);
        continue;
      }
      const sliceIn = [padded, c.int64s([oi, oj]), c.int64s(end), c.int64s([2, 3])];
      const win = c.op("Slice", strided ? [...sliceIn, c.int64s(geo.strides)] : sliceIn);
      cols.push(kh * kw === 1 ? win : c.op("Unsqueeze", [win, c.int64s([1])]));
    }
  }
  const stacked = cols.length === 1 ? cols[0]! : c.op("Concat", cols, { axis: 1 });
  const col = c.op("Reshape", [stacked, c.int64s([ci * kh * kw, -1])]);
  const dyt = c.op("Reshape", [c.op("Transpose", [dy], { perm: [1, 0, 2, 3] }), c.int64s([co, -1])]);
  return c.op("Reshape", [c.op("Gemm", [dyt, col], { transB: 1 }), c.int64s([co, ci, kh, kw])]);
};

/**
 * The Conv rule as it was before issue 17: dX and dB by today's rule, dW by im2col + Gemm, else the
 * batch-contraction Conv.
 */
const convRuleBefore: GradientRule = (c) => {
  const wanted = c.node.inputs.map((_, i) => c.needs(i) && i !== 1);
  const out = convRules.Conv!(new GradContext(c.g, c.node, c.info, [c.dy()], wanted));
  if (c.needs(1)) {
    const ws = c.needShape(c.x(1));
    const geo = convGeometry(c, c.x(0), c.y(), ws.slice(2));
    const group = c.int("group", 1);
    out[1] =
      im2colWeightGrad(c, c.x(0), c.dy()!, geo, group, ws) ??
      convWeightGrad(c, c.x(0), c.dy()!, geo, group, ws[1]! * group);
  }
  return out;
};

/** One Conv layer of a zoo model at batch 64: [label, C in, M out, H = W in, kernel, stride, group]. */
type Layer = [string, number, number, number, number, number, number];

const LAYERS: Layer[] = [
  ["cifar conv1 3→32 @32", 3, 32, 32, 3, 1, 1],
  ["cifar conv2 32→32 @32", 32, 32, 32, 3, 1, 1],
  ["cifar conv3 32→64 @16", 32, 64, 16, 3, 1, 1],
  ["cifar conv4 64→64 @16", 64, 64, 16, 3, 1, 1],
  ["resnet8 layer1 16→16 @32", 16, 16, 32, 3, 1, 1],
  ["resnet8 layer2.conv1 16→32 s2", 16, 32, 32, 3, 2, 1],
  ["resnet8 layer2.down 1×1 s2", 16, 32, 32, 1, 2, 1],
  ["resnet8 layer3.conv1 32→64 s2", 32, 64, 16, 3, 2, 1],
  ["resnet8 layer3.conv2 64→64 @8", 64, 64, 8, 3, 1, 1],
  ["mobilenet stem 3→16 @32", 3, 16, 32, 3, 1, 1],
  ["mobilenet dw 16 s2 @32", 16, 16, 32, 3, 2, 16],
  ["mobilenet pw 16→32 @16", 16, 32, 16, 1, 1, 1],
  ["mobilenet dw 64 s2 @8", 64, 64, 8, 3, 2, 64],
  ["mobilenet dw 128 @4", 128, 128, 4, 3, 1, 128],
];

const layerDims = ([, ci, co, h, k, s, group]: Layer) => {
  const pad = (k - 1) / 2;
  const o = Math.floor((h + 2 * pad - k) / s) + 1;
  const attrs = { kernel_shape: [k, k], strides: [s, s], pads: [pad, pad, pad, pad], group };
  return { x: [64, ci, h, h], w: [co, ci / group, k, k], y: [64, co, o, o], attrs };
};

/**
 * The backward graph of one Conv layer as the Conv rule emits it: the gradient of x or of W (seeded with the
 * input `dy`), the forward node dropped. `way` forces a dW way of src/autodiff/rules/conv-weight-grad.ts
 * ("batch-conv": the Conv with the batch as contraction); undefined takes the rule's own choice.
 */
function ruleGraph(layer: Layer, wrt: "x" | "w", way?: string): Graph {
  const d = layerDims(layer);
  const g = new Graph();
  g.inputs.push(
    { name: "x", dtype: "float32", shape: d.x },
    { name: "w", dtype: "float32", shape: d.w },
    { name: "dy", dtype: "float32", shape: d.y },
  );
  const y = g.op("Conv", ["x", "w"], d.attrs);
  const conv = g.nodes[0]!;
  inferShapes(g);
  if (way) {
    registerGradientRule(
      "Conv",
      (c) => {
        const ws = c.needShape(c.x(1));
        const geo = convGeometry(c, c.x(0), c.y(), ws.slice(2));
        const group = c.int("group", 1);
        const dw =
          way === "batch-conv"
            ? convWeightGrad(c, c.x(0), c.dy()!, geo, group, ws[1]! * group)
            : (way === "im2col" ? im2colWeightGrad : WEIGHT_GRAD_WAYS[way]!)(
                c,
                c.x(0),
                c.dy()!,
                geo,
                group,
                ws,
              );
        if (!dw) throw new Error(`dW way '${way}' does not apply to ${layer[0]}`);
        return [undefined, dw, undefined];
      },
      { replace: true },
    );
  }
  try {
    const grads = appendBackward(g, y, [wrt], { seed: "dy" });
    g.outputs.push({ name: grads.get(wrt)! });
  } finally {
    registerGradientRule("Conv", convRules.Conv!, { replace: true });
  }
  g.nodes = g.nodes.filter((n) => n !== conv);
  g.invalidate();
  return g;
}

/** Whether a dW way applies to a layer (im2col: group 1; pointwise: 1×1 stride 1 group 1). */
function applies(way: string, [, , , , k, s, group]: Layer): boolean {
  if (way === "im2col") return group === 1;
  if (way === "pointwise") return group === 1 && s === 1 && k === 1;
  return true;
}

async function weightGrads(): Promise<void> {
  const wi = process.argv.indexOf("--ways");
  const ways = wi > 0 ? process.argv[wi + 1]!.split(",") : ["batch-conv", "im2col", "onehot", "pointwise"];
  const li = process.argv.indexOf("--layers");
  const only = li > 0 ? process.argv[li + 1]! : "";
  console.log(`dW ways (ms per run; GFLOP/s of the product): ${ways.join(", ")}`);
  for (const layer of LAYERS.filter((l) => l[0].includes(only))) {
    const d = layerDims(layer);
    const feeds = { x: random(d.x, 1), w: random(d.w, 3), dy: random(d.y, 2) };
    const gflop = (2 * numel(d.y) * numel(d.w.slice(1))) / 1e9;
    const row: string[] = [];
    let reference: Float32Array | undefined;
    for (const way of ways) {
      if (!applies(way, layer)) continue;
      const { ms, out } = await timeGraph(ruleGraph(layer, "w", way), feeds);
      reference ??= out;
      const err = maxRelDiff(out, reference);
      row.push(
        `${way} ${ms.toFixed(3)} (${(gflop / (ms / 1000)).toFixed(0)}${err > 1e-4 ? ` ERR ${err.toExponential(1)}` : ""})`,
      );
    }
    console.log(`  ${layer[0].padEnd(32)} ${row.join("  ")}`);
  }
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d / (scale || 1);
}

/**
 * Forward Conv with its weight as an initializer (what a forward-only session sees: ORT's NCHWc transformer
 * reorders the constant weight and runs its blocked kernels) against the weight as a graph input (what the
 * training step sees: plain Conv), and the rule's dX graph (its Conv kernel is computed from W at run time).
 */
async function forwardAndInputGrads(): Promise<void> {
  console.log("forward Conv with W constant vs W an input, and dX by the rule (ms per run)");
  for (const layer of LAYERS) {
    const d = layerDims(layer);
    const w = random(d.w, 3);
    const times: string[] = [];
    for (const constant of [true, false]) {
      const g = new Graph();
      g.inputs.push({ name: "x", dtype: "float32", shape: d.x });
      if (constant) g.initializers.set("w", { dtype: "float32", dims: d.w, data: w.data as Float32Array });
      else g.inputs.push({ name: "w", dtype: "float32", shape: d.w });
      g.outputs.push({ name: g.op("Relu", [g.op("Conv", ["x", "w"], d.attrs)]) });
      const feeds: Record<string, ort.Tensor> = { x: random(d.x, 1) };
      if (!constant) feeds.w = w;
      times.push(`${constant ? "W constant" : "W input"} ${(await timeGraph(g, feeds)).ms.toFixed(3)}`);
    }
    const dx = await timeGraph(ruleGraph(layer, "x"), { x: random(d.x, 1), w, dy: random(d.y, 2) });
    console.log(`  ${layer[0].padEnd(32)} ${times.join("  ")}  dX ${dx.ms.toFixed(3)}`);
  }
}

function poolGraph(indices: boolean, dims: number[]): Graph {
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: dims });
  const outs = g.add(
    "MaxPool",
    ["x"],
    { kernel_shape: [2, 2], strides: [2, 2] },
    { outputs: indices ? 2 : 1 },
  );
  for (const o of outs) g.outputs.push({ name: o });
  return g;
}

/**
 * MaxPool 2×2/2 forward plus dX from dY three ways: Indices + ScatterElements (the general rule); the plain
 * equality mask X == U(Y) with nearest upsampling U (every tied element gets dY); the first maximum per window
 * (the default rule's tiled way: codes K − position on the mask, MaxPool of the codes, equality with it).
 */
function maxPoolGradGraph(kind: "scatter" | "mask" | "first-max", dims: number[]): Graph {
  const [n, c, h, w] = dims as [number, number, number, number];
  const g = new Graph();
  g.inputs.push(
    { name: "x", dtype: "float32", shape: dims },
    { name: "dy", dtype: "float32", shape: [n, c, h / 2, w / 2] },
  );
  const pool = { kernel_shape: [2, 2], strides: [2, 2] };
  let dx: string;
  if (kind === "scatter") {
    const [, idx] = g.add("MaxPool", ["x"], pool, { outputs: 2 });
    const flat = g.constant("flat", i64([1], [-1]));
    const zeros = g.constant("zeros", {
      dtype: "float32",
      dims: [numel(dims)],
      data: new Float32Array(numel(dims)),
    });
    const s = g.op("ScatterElements", [zeros, g.op("Reshape", [idx!, flat]), g.op("Reshape", ["dy", flat])], {
      axis: 0,
      reduction: "add",
    });
    dx = g.op("Reshape", [s, g.constant("xshape", i64([4], dims))]);
  } else {
    const y = g.op("MaxPool", ["x"], pool);
    const scales = g.constant("scales", { dtype: "float32", dims: [4], data: Float32Array.of(1, 1, 2, 2) });
    const up = (v: string) =>
      g.op("Resize", [v, "", scales], {
        mode: "nearest",
        coordinate_transformation_mode: "asymmetric",
        nearest_mode: "floor",
      });
    const equal = (a: string, b: string) => g.op("Cast", [g.op("Equal", [a, b])], { to: 1 });
    let mask = equal("x", up(y));
    if (kind === "first-max") {
      const p = new Float32Array(h * w);
      for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) p[i * w + j] = 4 - ((i % 2) * 2 + (j % 2));
      const code = g.op("Mul", [
        mask,
        g.constant("codes", { dtype: "float32", dims: [1, 1, h, w], data: p }),
      ]);
      mask = equal(code, up(g.op("MaxPool", [code], pool)));
    }
    dx = g.op("Mul", [mask, up("dy")]);
  }
  g.outputs.push({ name: dx });
  return g;
}

/**
 * Whether onnxruntime-node honours preallocated outputs (session.run(feeds, {name: tensor})): does ORT write into
 * the given buffer, does the result share it, and does it save time, on an update of cifar-cnn's size.
 */
async function preallocatedOutputs(): Promise<string> {
  const n = 591274;
  const g = new Graph();
  g.inputs.push({ name: "p", dtype: "float32", shape: [n] }, { name: "d", dtype: "float32", shape: [n] });
  g.outputs.push({ name: g.op("Sub", ["p", "d"]) });
  const s = await ort.InferenceSession.create(encodeModel(modelOf(g)), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const out = s.outputNames[0]!;
  const feeds = { p: random([n], 4), d: random([n], 5) };
  const pre = new ort.Tensor("float32", new Float32Array(n), [n]);
  const r = await s.run(feeds, { [out]: pre });
  const wrote =
    (pre.data as Float32Array)[7] === (r[out]!.data as Float32Array)[7] &&
    (pre.data as Float32Array)[7] !== 0;
  const shared = (r[out]!.data as Float32Array).buffer === (pre.data as Float32Array).buffer;
  const time = async (withPre: boolean) => {
    const t: number[] = [];
    for (let w = 0; w < 5; w++) {
      let k = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < 200) {
        await (withPre ? s.run(feeds, { [out]: pre }) : s.run(feeds));
        k++;
      }
      t.push((performance.now() - t0) / k);
    }
    return t.sort((a, b) => a - b)[2]!;
  };
  const [a, b, a2, b2] = [await time(false), await time(true), await time(false), await time(true)];
  await s.release();
  return `  preallocated output (${n} floats): ORT writes into it: ${wrote}; result shares its memory: ${shared}; ms per run ORT-allocated ${a.toFixed(3)}/${a2.toFixed(3)}, preallocated ${b.toFixed(3)}/${b2.toFixed(3)}`;
}

/**
 * Whole float training steps (SGD momentum, batch 64) of zoo models built with the Conv rule's dW ways before
 * issue 17 (convRuleBefore: im2col + Gemm, batch-contraction Conv for grouped convs) and as it is now,
 * run in alternating order in one process: median ms per step of each and the largest difference of the loss
 * and of the first parameter after the step.
 */
async function steps(): Promise<void> {
  const runs = Number(process.argv[process.argv.indexOf("--steps") + 1] ?? 0) || 20;
  console.log(`training steps, im2col (before) vs current dW ways, ${runs} steps each, alternating`);
  for (const model of ["cifar-cnn", "resnet8", "mobilenet-tiny"]) {
    const net = zooModel(model, { seed: 1 });
    const build = (before: boolean) => {
      if (before) registerGradientRule("Conv", convRuleBefore, { replace: true });
      try {
        return buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } });
      } finally {
        registerGradientRule("Conv", convRules.Conv!, { replace: true });
      }
    };
    const variants = [build(true), build(false)];
    const sessions = await Promise.all(variants.map((v) => openSession(v.model, { threads })));
    const { xs, ys } = stepBatches(net, 64);
    const step = variants[0]!;
    const feeds: Record<string, ort.Tensor> = {
      [step.lr]: new ort.Tensor("float32", Float32Array.of(0.01), []),
      [step.step]: new ort.Tensor("float32", Float32Array.of(1), []),
      [step.x]: xs[0]!,
      [step.labels]: ys[0]!,
    };
    for (const c of step.carried) feeds[c.name] = toOrt(c.init);
    const times: number[][] = [[], []];
    const outs: Record<string, ort.Tensor>[] = [];
    for (let i = 0; i < runs + 3; i++) {
      for (let v = 0; v < 2; v++) {
        const t0 = performance.now();
        outs[v] = await sessions[v]!.run(feeds);
        if (i >= 3) times[v]!.push(performance.now() - t0);
      }
    }
    const med = (t: number[]) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!;
    const [a, b] = [med(times[0]!), med(times[1]!)];
    const p = step.carried[0]!;
    const diff = (name: string) =>
      maxRelDiff(outs[1]![name]!.data as Float32Array, outs[0]![name]!.data as Float32Array);
    console.log(
      `  ${model.padEnd(16)} before ${a.toFixed(1)} ms  now ${b.toFixed(1)} ms  now/before ${(b / a).toFixed(3)}` +
        `  loss diff ${diff(step.loss).toExponential(1)}  ${p.name} diff ${diff(p.next).toExponential(1)}`,
    );
    for (const s of sessions) await s.release();
  }
}

async function main(): Promise<void> {
  console.log(`backward-pass pieces, batch 64, ${threads} threads (median ms per run)`);
  if (sections.has("dw")) await weightGrads();
  if (sections.has("fwd")) await forwardAndInputGrads();
  if (sections.has("step")) await steps();
  if (!sections.has("pool")) return;
  for (const dims of [
    [64, 8, 28, 28],
    [64, 64, 32, 32],
  ]) {
    const feeds = { x: random(dims, 3) };
    const a = (await timeGraph(poolGraph(false, dims), feeds)).ms;
    const b = (await timeGraph(poolGraph(true, dims), feeds)).ms;
    console.log(`  MaxPool 2×2 on [${dims}]: ${a.toFixed(3)} ms, with Indices ${b.toFixed(3)} ms`);
    const withDy = { ...feeds, dy: random([dims[0]!, dims[1]!, dims[2]! / 2, dims[3]! / 2], 4) };
    const row: string[] = [];
    for (const kind of ["scatter", "mask", "first-max"] as const)
      row.push(`${kind} ${(await timeGraph(maxPoolGradGraph(kind, dims), withDy)).ms.toFixed(3)} ms`);
    console.log(`  MaxPool 2×2 forward + dX on [${dims}]: ${row.join("   ")}`);
  }
  console.log(await preallocatedOutputs());
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
