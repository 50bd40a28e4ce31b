import { DataError, type DataPlace } from "./errors.js";

/** Per-channel statistics of the stored values (index 0..C-1 for [C,H,W] inputs, one per feature for [F]). */
export interface ChannelStats {
  mean: number[];
  std: number[];
}

/** Passed by the loader to `fill`: augmenting datasets draw their randomness from (seed, epoch, item). */
export interface FillContext {
  epoch?: number;
}

/**
 * A classification dataset. Values are written as the dataset stores them (0–255 for 8-bit images): the model graph
 * normalises, so an exported model takes raw values. `stats()` gives the per-channel mean and std for that graph.
 */
export interface Dataset {
  readonly name: string;
  /** [C, H, W] for images, [features] for tabular data. */
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly length: number;
  readonly classNames?: readonly string[];
  /** Per-channel mean and (population) std of the stored values, computed once or known. */
  stats(): ChannelStats;
  /**
   * Write samples `indices[k]` into `x` (row k at k·sampleSize) and their labels into `y[k]`. Throws a `DataError`
   * for a sample that cannot be read (lazily decoded datasets).
   */
  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx?: FillContext): void;
}

/**
 * The same samples, counted as `numClasses` classes: a dataset that knows its classes only from its labels (NPZ, CSV)
 * may use fewer than the model it trains (labels 0–144 of an ImageNet model's 1000).
 */
export function withClasses(ds: Dataset, numClasses: number): Dataset {
  if (numClasses === ds.numClasses) return ds;
  if (numClasses < ds.numClasses)
    throw new Error(`dataset '${ds.name}' has ${ds.numClasses} classes, more than ${numClasses}`);
  return {
    name: ds.name,
    inputShape: ds.inputShape,
    numClasses,
    length: ds.length,
    classNames: ds.classNames,
    stats: () => ds.stats(),
    fill: (indices, x, y, ctx) => ds.fill(indices, x, y, ctx),
  };
}

/** Elements in one sample. */
export function sampleSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Storage of an in-memory dataset: any numeric typed array, one sample after the other. */
export type SampleStore =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

export interface ArrayDatasetInit {
  name: string;
  inputShape: readonly number[];
  numClasses: number;
  data: SampleStore;
  labels: Int32Array;
  classNames?: readonly string[];
  /** Known statistics (skip the computation). */
  stats?: ChannelStats;
}

/** A dataset held in memory: samples in a typed array (kept in the file's element type), labels as int32. */
export class ArrayDataset implements Dataset {
  readonly name: string;
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly length: number;
  readonly classNames?: readonly string[];
  readonly data: SampleStore;
  readonly labels: Int32Array;
  private readonly size: number;
  private cachedStats: ChannelStats | undefined;

  constructor(init: ArrayDatasetInit) {
    this.name = init.name;
    this.inputShape = [...init.inputShape];
    this.numClasses = init.numClasses;
    this.size = sampleSize(init.inputShape);
    this.length = init.labels.length;
    if (init.data.length !== this.length * this.size) {
      throw new DataError(
        `${init.labels.length} labels but ${init.data.length / this.size} samples of shape [${init.inputShape}]; ` +
          "the sample and label files must describe the same items",
      );
    }
    this.data = init.data;
    this.labels = init.labels;
    if (init.classNames) this.classNames = [...init.classNames];
    this.cachedStats = init.stats;
  }

  stats(): ChannelStats {
    this.cachedStats ??= channelStats(this.data, this.inputShape);
    return this.cachedStats;
  }

  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, _ctx?: FillContext): void {
    const n = this.size;
    checkBatch(indices, x, y, n, this.length, this.name);
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      const src = this.data.subarray(i * n, i * n + n);
      x.set(src, k * n);
      y[k] = BigInt(this.labels[i]!);
    }
  }
}

/** Throw a plain Error (a programming error, not bad input) when a batch does not fit its buffers. */
export function checkBatch(
  indices: ArrayLike<number>,
  x: Float32Array,
  y: BigInt64Array,
  size: number,
  length: number,
  name: string,
): void {
  if (x.length < indices.length * size || y.length < indices.length) {
    throw new RangeError(`${name}: batch of ${indices.length} does not fit x[${x.length}] / y[${y.length}]`);
  }
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!(i >= 0 && i < length && Number.isInteger(i))) {
      throw new RangeError(`${name}: sample index ${i} outside 0..${length - 1}`);
    }
  }
}

/**
 * Per-channel mean and population std. Channel = first dimension of the sample shape ([C,H,W] → C channels,
 * [F] → one per feature). Accumulates in float64 (two sums per channel, shifted by the first value for stability).
 */
export function channelStats(data: ArrayLike<number>, inputShape: readonly number[]): ChannelStats {
  const c = inputShape[0] ?? 1;
  const size = sampleSize(inputShape);
  const plane = size / c;
  const count = data.length / size;
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    const shift = count > 0 ? data[ch * plane]! : 0;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < count; i++) {
      const base = i * size + ch * plane;
      for (let j = 0; j < plane; j++) {
        const v = data[base + j]! - shift;
        s += v;
        s2 += v * v;
      }
    }
    const m = count * plane;
    const mu = m > 0 ? s / m : 0;
    mean.push(shift + mu);
    std.push(m > 0 ? Math.sqrt(Math.max(0, s2 / m - mu * mu)) : 0);
  }
  return { mean, std };
}

/**
 * Check every label is an integer in [0, numClasses). `place(i)` says where label i lives in its file, so the
 * error points at it.
 */
export function checkLabels(
  labels: ArrayLike<number>,
  numClasses: number,
  place: (i: number) => DataPlace,
): void {
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v < numClasses)) {
      throw new DataError(
        `label ${v} of item ${i} is outside 0..${numClasses - 1} (${numClasses} classes); ` +
          "fix the label, or give the right number of classes",
        place(i),
      );
    }
  }
}
