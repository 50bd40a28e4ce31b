/**
 * Small QDQ int8 models built with the graph builder, for the device tests: a conv net whose middle layer has
 * full-range int8 weights (so x86 without VNNI saturates its u8·s8 pair sums there, and nowhere else), and a
 * TensorRT-profile net (int8 symmetric activations, narrow-range weights, float biases).
 */

import type { EvalSet } from "../../devices/validate.js";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, tensor } from "../../src/onnx/tensor.js";

/** A deterministic generator in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

interface Builder {
  g: Graph;
  qdq: (name: string, input: string, scale: number, dtype: "uint8" | "int8") => string;
  weight: (name: string, dims: number[], values: (i: number) => number, scale: number) => string;
}

function builder(): Builder {
  const g = new Graph();
  const qdq = (name: string, input: string, scale: number, dtype: "uint8" | "int8"): string => {
    const s = g.constant(`${name}.scale`, f32([], [scale]));
    const z = g.constant(`${name}.zero_point`, tensor(dtype, [], [0]));
    const q = g.op("QuantizeLinear", [input, s, z], {}, { name: `${name}.quantize`, output: `${name}.q` });
    return g.op("DequantizeLinear", [q, s, z], {}, { name: `${name}.dequantize`, output: `${name}.dq` });
  };
  const weight = (name: string, dims: number[], values: (i: number) => number, scale: number): string => {
    const n = dims.reduce((a, b) => a * b, 1);
    const w = g.constant(
      `${name}.weight.int8`,
      tensor(
        "int8",
        dims,
        Array.from({ length: n }, (_, i) => values(i)),
      ),
    );
    const s = g.constant(`${name}.weight.scale`, f32([dims[0]!], new Array(dims[0]).fill(scale)));
    const z = g.constant(`${name}.weight.zero_point`, tensor("int8", [dims[0]!], new Array(dims[0]).fill(0)));
    return g.op(
      "DequantizeLinear",
      [w, s, z],
      { axis: 0 },
      { name: `${name}.weight.dequantize`, output: `${name}.w` },
    );
  };
  return { g, qdq, weight };
}

/**
 * x[N,4,8,8] → conv1 (4→8, small positive weights) → ReLU → conv2 (8→8; weights in −128…127 when `fullRange`, else
 * clamped to ±64) → ReLU → Flatten → fc (512→10, weights ±60) → logits. Activations are uint8 with zero point 0,
 * large (inputs in 0.4…1), so conv2's pairs of u8·s8 products exceed 32767 when its weights use the full range.
 */
export function saturatingNet(fullRange: boolean): Uint8Array {
  const rnd = lcg(12345);
  const { g, qdq, weight } = builder();
  g.inputs.push({ name: "x", dtype: "float32", shape: ["batch", 4, 8, 8] });
  const pads = { pads: [1, 1, 1, 1] };
  const x = qdq("x", "x", 1 / 255, "uint8");
  const w1 = weight("conv1", [8, 4, 3, 3], () => 10 + Math.floor(rnd() * 50), 0.004);
  const c1 = g.op("Conv", [x, w1], pads, { name: "conv1", output: "conv1_out" });
  const r1 = g.op("Relu", [c1], {}, { name: "relu1", output: "relu1_out" });
  const a1 = qdq("relu1_out", r1, 4 / 255, "uint8");
  const w2 = weight(
    "conv2",
    [8, 8, 3, 3],
    () => {
      const v = Math.floor(rnd() * 256) - 128;
      return fullRange ? v : Math.max(-64, Math.min(64, v));
    },
    0.002,
  );
  const c2 = g.op("Conv", [a1, w2], pads, { name: "conv2", output: "conv2_out" });
  const r2 = g.op("Relu", [c2], {}, { name: "relu2", output: "relu2_out" });
  const a2 = qdq("relu2_out", r2, 8 / 255, "uint8");
  const fl = g.op("Flatten", [a2], {}, { name: "flatten", output: "flat" });
  const a3 = qdq("flat", fl, 8 / 255, "uint8");
  const w3 = weight("fc", [10, 512], () => Math.floor(rnd() * 121) - 60, 0.003);
  g.op("Gemm", [a3, w3], { transB: 1 }, { name: "fc", output: "logits" });
  g.outputs.push({ name: "logits", dtype: "float32", shape: ["batch", 10] });
  return encodeModel(modelOf(g, { "": 17 }));
}

/** Inputs for `saturatingNet` in 0.4…1 and labels (the class the clean net picks is not the point here). */
export function saturatingSet(n: number, seed = 7): EvalSet {
  const rnd = lcg(seed);
  const inputs = Float32Array.from({ length: n * 4 * 64 }, () => 0.4 + 0.6 * rnd());
  return { inputs, sampleShape: [4, 8, 8], labels: Array.from({ length: n }, (_, i) => i % 10) };
}

/**
 * A TensorRT-profile QDQ net on MNIST-shaped input ([batch or 1, 1, 28, 28], raw 0–255 pixels): int8 symmetric
 * activations (zero point 0), narrow-range int8 weights per output channel, float biases — what
 * `qat export --target tensorrt` writes. `batch` fixes the batch dimension (else it is symbolic).
 */
export function tensorRtNet(batch?: number): Uint8Array {
  const rnd = lcg(99);
  const { g, qdq, weight } = builder();
  g.inputs.push({ name: "input:0", dtype: "float32", shape: [batch ?? "batch", 1, 28, 28] });
  const x = qdq("x", "input:0", 2, "int8");
  const w1 = weight("conv1", [4, 1, 3, 3], () => Math.floor(rnd() * 255) - 127, 0.004);
  const b1 = g.constant("conv1.bias", f32([4], [0.1, -0.2, 0.05, 0]));
  const c1 = g.op(
    "Conv",
    [x, w1, b1],
    { pads: [1, 1, 1, 1], strides: [2, 2] },
    { name: "conv1", output: "c1" },
  );
  const r1 = g.op("Relu", [c1], {}, { name: "relu1", output: "r1" });
  const a1 = qdq("r1", r1, 0.25, "int8");
  const fl = g.op("Flatten", [a1], {}, { name: "flatten", output: "flat" });
  const a2 = qdq("flat", fl, 0.25, "int8");
  const w2 = weight("fc", [10, 784], () => Math.floor(rnd() * 255) - 127, 0.002);
  const b2 = g.constant("fc.bias", f32([10], new Array(10).fill(0)));
  g.op("Gemm", [a2, w2, b2], { transB: 1 }, { name: "fc", output: "logits" });
  g.outputs.push({ name: "logits", dtype: "float32", shape: [batch ?? "batch", 10] });
  return encodeModel(modelOf(g, { "": 17 }));
}
