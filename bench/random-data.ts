/**
 * Random inputs for the throughput benches: images as a dataset stores them (0–255), and 10-class labels or, for a
 * regression loss, fixed standard-normal float targets.
 */
import * as ort from "onnxruntime-node";
import type { Dataset } from "../src/data/dataset.js";
import type { NetModel } from "../src/nn/model.js";
import { Rng } from "../src/util/rng.js";

/** `n` random images of `shape` (values 0–255), for calibration and timing. */
export function randomImages(shape: number[], n: number, seed: number): Dataset {
  const size = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(seed);
  const xs = Float32Array.from({ length: n * size }, () => Math.floor(rng.next() * 256));
  return {
    name: "random",
    inputShape: shape,
    numClasses: 10,
    length: n,
    stats: () => ({ mean: new Array(shape[0]).fill(127.5), std: new Array(shape[0]).fill(73.6) }),
    fill(idx, x, y) {
      for (let k = 0; k < idx.length; k++) {
        x.set(xs.subarray(idx[k]! * size, (idx[k]! + 1) * size), k * size);
        y[k] = BigInt(idx[k]! % 10);
      }
    },
  };
}

/**
 * Four batches of random images (0–255) and their targets, as ORT tensors, cycled through by timed steps: int64
 * class labels, or with `targetSize` float32 [batch, targetSize] standard-normal targets (the regression loss's).
 */
export function stepBatches(
  net: NetModel,
  batch: number,
  seed = 3,
  targetSize?: number,
): { xs: ort.Tensor[]; ys: ort.Tensor[] } {
  const size = net.inputShape.reduce((a, b) => a * b, 1);
  const rng = new Rng(seed);
  const xs = Array.from(
    { length: 4 },
    () =>
      new ort.Tensor(
        "float32",
        Float32Array.from({ length: batch * size }, () => Math.floor(rng.next() * 256)),
        [batch, ...net.inputShape],
      ),
  );
  const ys = Array.from({ length: 4 }, () =>
    targetSize === undefined
      ? new ort.Tensor(
          "int64",
          BigInt64Array.from({ length: batch }, () => BigInt(Math.floor(rng.next() * 10))),
          [batch],
        )
      : new ort.Tensor(
          "float32",
          Float32Array.from({ length: batch * targetSize }, () => rng.normal()),
          [batch, targetSize],
        ),
  );
  return { xs, ys };
}
