/** Models and image folders the quantize tests build: small, seeded, written to a temp folder. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32 } from "../../src/onnx/tensor.js";
import { seeded } from "../helpers/random.js";

/** `count` grey PNG images of `size`×`size` with smooth seeded patterns (blobs, not noise, so crops differ). */
export function writeImages(dir: string, count: number, size = 24, seed = 1): string {
  mkdirSync(dir, { recursive: true });
  const r = seeded(seed);
  for (let i = 0; i < count; i++) {
    const data = new Uint8Array(size * size);
    const [cx, cy, fx, fy] = [r() * size, r() * size, 0.2 + r() * 0.6, 0.2 + r() * 0.6];
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) {
        const d = Math.hypot(x - cx, y - cy);
        data[y * size + x] = Math.round(127.5 + 120 * Math.sin(fx * x + fy * y) * Math.exp(-d / size));
      }
    writeFileSync(
      join(dir, `img${i}.png`),
      encodePng({ width: size, height: size, data, channels: 1, depth: 8 }),
    );
  }
  return dir;
}

/**
 * A small segmentation-like model with an op qat has no gradient rule for: Conv → Elu → Conv → Relu → Conv, input
 * [1,1,16,16] fixed at batch 1, output [1,2,16,16] (not a classifier: fidelity is the cosine of the map).
 */
export function writeEluModel(file: string): string {
  const r = seeded(7);
  const w = (dims: number[]) =>
    f32(
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (2 * r() - 1) * 0.5),
    );
  const g = new Graph();
  g.name = "elu-net";
  g.inputs.push({ name: "image", dtype: "float32", shape: [1, 1, 16, 16] });
  const conv = (x: string, name: string, cin: number, cout: number) =>
    g.op(
      "Conv",
      [x, g.constant(`${name}.weight`, w([cout, cin, 3, 3])), g.constant(`${name}.bias`, w([cout]))],
      { pads: [1, 1, 1, 1] },
      { name },
    );
  const a = g.op("Elu", [conv("image", "conv1", 1, 4)], {}, { name: "elu1" });
  const b = g.op("Relu", [conv(a, "conv2", 4, 4)], {}, { name: "relu2" });
  g.op(
    "Conv",
    [b, g.constant("head.weight", w([2, 4, 3, 3])), g.constant("head.bias", w([2]))],
    { pads: [1, 1, 1, 1] },
    { name: "head", output: "mask" },
  );
  g.outputs.push({ name: "mask", dtype: "float32", shape: [1, 2, 16, 16] });
  writeFileSync(file, encodeModel(modelOf(g, { "": 17 })));
  return file;
}
