import type { Dataset } from "../../src/data/dataset.js";
import type { Tensor } from "../../src/onnx/tensor.js";
import { seeded } from "../helpers/random.js";

/** A dataset of random 0–255 images with labels i mod 10. */
export function synthDataset(shape: number[], n: number, seed = 1): Dataset {
  const size = shape.reduce((a, b) => a * b, 1);
  const r = seeded(seed);
  const xs = Float32Array.from({ length: n * size }, () => Math.floor(r() * 256));
  return {
    name: "synth",
    inputShape: shape,
    numClasses: 10,
    length: n,
    stats: () => ({ mean: new Array(shape[0]).fill(127), std: new Array(shape[0]).fill(70) }),
    fill(idx, x, y) {
      for (let k = 0; k < idx.length; k++) {
        x.set(xs.subarray(idx[k]! * size, idx[k]! * size + size), k * size);
        y[k] = BigInt(idx[k]! % 10);
      }
    },
  };
}

export function batchOf(shape: number[], n: number, seed: number): Tensor {
  const r = seeded(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    dtype: "float32",
    dims: [n, ...shape],
    data: Float32Array.from({ length: n * size }, () => Math.floor(r() * 256)),
  };
}
