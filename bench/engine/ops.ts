/**
 * Micro-benchmark of the backward pass's costliest pieces, to see what bounds a training step: ways to compute a
 * 3×3 convolution's weight gradient (Conv with the batch as contraction; im2col by Slice/Concat + Gemm; im2col by
 * a one-hot depthwise Conv + batched MatMul) and MaxPool with/without Indices, at the layer shapes of mnist-cnn and
 * cifar-cnn (batch 64), MaxPool forward + gradient by Indices/ScatterElements against the mask ways, and whether
 * preallocated outputs save anything. Each variant is its own ORT session; time
 * per run is the median of several windows.
 *
 *   npm run build && node dist/bench/engine/ops.js [--threads 2]
 */
import * as ort from "onnxruntime-node";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { i64, numel } from "../../src/onnx/tensor.js";
import { Rng } from "../../src/util/rng.js";

const ti = process.argv.indexOf("--threads");
const threads = ti > 0 ? Number(process.argv[ti + 1]) : 2;

async function timeGraph(g: Graph, feeds: Record<string, ort.Tensor>): Promise<number> {
  const s = await ort.InferenceSession.create(encodeModel(modelOf(g)), {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  for (let i = 0; i < 5; i++) await s.run(feeds);
  const times: number[] = [];
  for (let w = 0; w < 5; w++) {
    let k = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 300) {
      await s.run(feeds);
      k++;
    }
    times.push((performance.now() - t0) / k);
  }
  await s.release();
  return times.sort((a, b) => a - b)[2]!;
}

function random(dims: number[], seed: number): ort.Tensor {
  const r = new Rng(seed);
  const d = new Float32Array(numel(dims));
  for (let i = 0; i < d.length; i++) d[i] = r.uniform(-1, 1);
  return new ort.Tensor("float32", d, dims);
}

/** dW of Conv(x: [n,ci,h,w], W: [co,ci,3,3], pad 1) from x and dY: [n,co,h,w]. */
function weightGradGraph(
  kind: "conv" | "im2col-gemm" | "dwconv-matmul",
  n: number,
  ci: number,
  co: number,
  h: number,
  w: number,
): Graph {
  const g = new Graph();
  g.inputs.push(
    { name: "x", dtype: "float32", shape: [n, ci, h, w] },
    { name: "dy", dtype: "float32", shape: [n, co, h, w] },
  );
  const xt = g.op("Transpose", ["x"], { perm: [1, 0, 2, 3] });
  const dyt = g.op("Transpose", ["dy"], { perm: [1, 0, 2, 3] });
  let dw: string;
  if (kind === "dwconv-matmul") {
    // im2col by a depthwise Conv with one-hot 3×3 kernels (channel ci·9+k = window k of channel ci), then per
    // sample [ci·9, h·w] × [h·w, co] and a sum over the batch
    const onehot = new Float32Array(ci * 9 * 9);
    for (let c = 0; c < ci; c++) for (let k = 0; k < 9; k++) onehot[(c * 9 + k) * 9 + k] = 1;
    const e = g.constant("onehot", { dtype: "float32", dims: [ci * 9, 1, 3, 3], data: onehot });
    const col = g.op("Conv", ["x", e], { pads: [1, 1, 1, 1], group: ci });
    const col3 = g.op("Reshape", [col, g.constant("c3", i64([3], [0, ci * 9, -1]))]);
    const dy3 = g.op("Transpose", [g.op("Reshape", ["dy", g.constant("d3", i64([3], [0, co, -1]))])], {
      perm: [0, 2, 1],
    });
    const per = g.op("MatMul", [col3, dy3]);
    const sum = g.op("ReduceSum", [per, g.constant("ax0", i64([1], [0]))], { keepdims: 0 });
    dw = g.op("Reshape", [
      g.op("Transpose", [sum], { perm: [1, 0] }),
      g.constant("wshape", i64([4], [co, ci, 3, 3])),
    ]);
  } else if (kind === "conv") {
    // the batch as the contraction: Conv(xᵀ [ci,n,h,w], dYᵀ [co,n,h,w]) = dWᵀ [ci,co,3,3]
    const c = g.op("Conv", [xt, dyt], { pads: [1, 1, 1, 1] });
    dw = g.op("Transpose", [c], { perm: [1, 0, 2, 3] });
  } else {
    // im2col of xᵀ: 9 shifted windows stacked as [ci, 9, n·h·w], then one Gemm with dYᵀ [co, n·h·w]
    const padded = g.op("Pad", [xt, g.constant("pads", i64([8], [0, 0, 1, 1, 0, 0, 1, 1]))]);
    const cols: string[] = [];
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        const s = g.op("Slice", [
          padded,
          g.constant("st", i64([2], [i, j])),
          g.constant("en", i64([2], [i + h, j + w])),
          g.constant("ax", i64([2], [2, 3])),
        ]);
        cols.push(g.op("Unsqueeze", [s, g.constant("one", i64([1], [1]))]));
      }
    }
    const col = g.op("Reshape", [
      g.op("Concat", cols, { axis: 1 }),
      g.constant("colshape", i64([2], [ci * 9, -1])),
    ]);
    const dy2 = g.op("Reshape", [dyt, g.constant("dyshape", i64([2], [co, -1]))]);
    dw = g.op("Reshape", [
      g.op("Gemm", [dy2, col], { transB: 1 }),
      g.constant("wshape", i64([4], [co, ci, 3, 3])),
    ]);
  }
  g.outputs.push({ name: dw });
  return g;
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

async function main(): Promise<void> {
  console.log(`backward-pass pieces, batch 64, ${threads} threads (median ms per run)`);
  const shapes: [string, number, number, number, number][] = [
    ["mnist conv1 1→8 @28", 1, 8, 28, 28],
    ["mnist conv2 8→16 @14", 8, 16, 14, 14],
    ["cifar conv2 32→32 @32", 32, 32, 32, 32],
    ["cifar conv4 64→64 @16", 64, 64, 16, 16],
  ];
  for (const [label, ci, co, h, w] of shapes) {
    const feeds = { x: random([64, ci, h, w], 1), dy: random([64, co, h, w], 2) };
    const gflop = (2 * 64 * co * h * w * ci * 9) / 1e9;
    const row: string[] = [];
    for (const kind of ["conv", "im2col-gemm", "dwconv-matmul"] as const) {
      const ms = await timeGraph(weightGradGraph(kind, 64, ci, co, h, w), feeds);
      row.push(`${kind} ${ms.toFixed(3)} ms (${(gflop / (ms / 1000)).toFixed(1)} GFLOP/s)`);
    }
    console.log(`  weight grad ${label.padEnd(24)} ${row.join("   ")}`);
  }
  for (const dims of [
    [64, 8, 28, 28],
    [64, 64, 32, 32],
  ]) {
    const feeds = { x: random(dims, 3) };
    const a = await timeGraph(poolGraph(false, dims), feeds);
    const b = await timeGraph(poolGraph(true, dims), feeds);
    console.log(`  MaxPool 2×2 on [${dims}]: ${a.toFixed(3)} ms, with Indices ${b.toFixed(3)} ms`);
    const withDy = { ...feeds, dy: random([dims[0]!, dims[1]!, dims[2]! / 2, dims[3]! / 2], 4) };
    const row: string[] = [];
    for (const kind of ["scatter", "mask", "first-max"] as const)
      row.push(`${kind} ${(await timeGraph(maxPoolGradGraph(kind, dims), withDy)).toFixed(3)} ms`);
    console.log(`  MaxPool 2×2 forward + dX on [${dims}]: ${row.join("   ")}`);
  }
  console.log(await preallocatedOutputs());
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
