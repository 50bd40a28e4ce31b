import { ArrayDataset, type ChannelStats, checkLabels, type SampleStore } from "./dataset.js";
import { DataError } from "./errors.js";
import { readIdx } from "./idx.js";

export interface IdxDatasetOptions {
  /** The images (or feature vectors) file: IDX, raw or .gz. */
  images: string;
  /** The labels file: IDX with one dimension. */
  labels: string;
  name?: string;
  classNames?: readonly string[];
  /** Default: classNames.length, else the largest label + 1. */
  numClasses?: number;
  stats?: ChannelStats;
}

/**
 * MNIST-style IDX files: images N×H×W (one channel, so samples are [1, H, W]), N×H×W×C (channels last, moved to
 * [C, H, W]) or N×F feature vectors, and N labels. uint8 pixels stay uint8 in memory.
 */
export function readIdxDataset(opts: IdxDatasetOptions): ArrayDataset {
  const img = readIdx(opts.images);
  const lab = readIdx(opts.labels);
  const dims = [...img.dims];
  const n = dims[0] ?? 0;
  if (dims.length < 2 || dims.length > 4) {
    throw new DataError(
      `images have ${dims.length} dimension(s) (${dims.join("×")}); expected N×H×W or N×F`,
      {
        file: opts.images,
      },
    );
  }
  if (lab.dims.length !== 1) {
    throw new DataError(`labels have dimensions ${lab.dims.join("×")}; expected one dimension (N)`, {
      file: opts.labels,
    });
  }
  if (lab.dims[0] !== n) {
    throw new DataError(`${lab.dims[0]} labels for ${n} images; the two files must describe the same items`, {
      file: opts.labels,
    });
  }
  let data: SampleStore = img.data instanceof Uint8Array ? img.data : Float32Array.from(img.data);
  let inputShape: number[];
  if (dims.length === 2) inputShape = [dims[1]!];
  else if (dims.length === 3) inputShape = [1, dims[1]!, dims[2]!];
  else {
    const [, h, w, c] = dims as [number, number, number, number];
    inputShape = [c, h, w];
    data = hwcToChw(data, n, h, w, c);
  }
  const labels = Int32Array.from(lab.data as ArrayLike<number>);
  let numClasses = opts.numClasses ?? opts.classNames?.length;
  if (numClasses === undefined) {
    let max = -1;
    for (const v of labels) if (v > max) max = v;
    numClasses = Math.max(max + 1, 1);
  }
  const itemBytes = lab.data.BYTES_PER_ELEMENT;
  checkLabels(labels, numClasses, (i) => ({ file: opts.labels, offset: 8 + i * itemBytes, item: i }));
  return new ArrayDataset({
    name: opts.name ?? opts.images,
    inputShape,
    numClasses,
    data,
    labels,
    ...(opts.classNames ? { classNames: opts.classNames } : {}),
    ...(opts.stats ? { stats: opts.stats } : {}),
  });
}

function hwcToChw(src: SampleStore, n: number, h: number, w: number, c: number): SampleStore {
  const out = new (src.constructor as new (len: number) => SampleStore)(src.length);
  const plane = h * w;
  for (let i = 0; i < n; i++) {
    const base = i * plane * c;
    for (let p = 0; p < plane; p++)
      for (let ch = 0; ch < c; ch++) out[base + ch * plane + p] = src[base + p * c + ch]!;
  }
  return out;
}
