import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import type { EvalSet } from "../../devices/validate.js";

export const SHARED = new URL("../../../shared/", import.meta.url).pathname;
export const MNIST8 = `${SHARED}models/mnist-8.onnx`;

/** The first `n` MNIST test images (raw 0–255 pixels as float32, as mnist-8 wants) and their labels. */
export function mnistTest(n: number, offset = 0): EvalSet {
  const img = gunzipSync(readFileSync(`${SHARED}data/mnist/t10k-images-idx3-ubyte.gz`));
  const lab = gunzipSync(readFileSync(`${SHARED}data/mnist/t10k-labels-idx1-ubyte.gz`));
  if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049) throw new Error("not MNIST IDX files");
  const inputs = new Float32Array(n * 784);
  for (let i = 0; i < n * 784; i++) inputs[i] = img[16 + offset * 784 + i]!;
  const labels = Array.from(lab.subarray(8 + offset, 8 + offset + n));
  return { inputs, sampleShape: [1, 28, 28], labels };
}
