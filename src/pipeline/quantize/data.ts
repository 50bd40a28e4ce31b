/**
 * The data of a quantize run, as the model takes it: a labelled dataset (a name, a folder of class folders, IDX,
 * .npz…) or a folder of unlabelled images, brought to the model's input (size, channels, layout) and preprocessed as
 * the user's application does ((value · scale − mean) / std, given by flags). The preprocessing is applied to the
 * samples, not put into the graph: the int8 model then takes exactly what the float model takes (a drop-in
 * replacement). Two disjoint parts: calibration/training samples and held-out samples the metric is measured on.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { type ChannelStats, type Dataset, type FillContext, sampleSize } from "../../data/dataset.js";
import { DataError } from "../../data/errors.js";
import { openImageSet } from "../../data/image-set.js";
import { openDataset } from "../../data/open.js";
import { SubsetDataset } from "../../data/split.js";
import type { DistillPlan } from "./detect-metric.js";
import type { QuantMetric } from "./metric.js";
import type { Preprocess } from "./types.js";
import { QuantizeError } from "./types.js";

export interface ModelInput {
  name: string;
  /** One sample as the model takes it. */
  sampleShape: number[];
  layout: "nchw" | "nhwc";
}

export interface QuantizeData {
  calibration: Dataset;
  heldOut: Dataset;
  labelled: boolean;
  /** What was read and how it was split, for the stage log. */
  describe: string;
  /** The metric the data brings (a detection set's mAP); else top-1 accuracy with labels, fidelity without. */
  metric?: QuantMetric;
  /** How distillation compares student and teacher outputs, when the data's task says (a detector's head). */
  distill?: DistillPlan;
}

const IMAGE = /\.(png|jpe?g)$/i;
/** An unlabelled folder of a few photos is multiplied into this many crops per part at least. */
const FEW_IMAGES = 10;

/** Open, check, preprocess and split the data. Every problem is a QuantizeError/DataError (exit 2). */
export async function openQuantizeData(
  spec: string,
  input: ModelInput,
  opts: {
    labels?: string;
    dataDir?: string;
    preprocess?: Preprocess;
    evalSamples: number;
    calibrationSamples: number;
    seed: number;
  },
): Promise<QuantizeData> {
  const pre = opts.preprocess ?? {};
  const { channels, height, width } = imageDims(input, pre);
  const labels = opts.labels ?? "auto";
  if (isUnlabelledFolder(spec)) {
    if (channels !== 1 && channels !== 3)
      throw new QuantizeError(
        `model input '${input.name}' has ${channels} channels; an image folder gives 1 (grey) or 3 (RGB)`,
      );
    return imageFolderData(spec, input, { ...opts, height, width, channels: channels as 1 | 3, pre });
  }
  const open = (split: "train" | "test") =>
    openDataset(spec, {
      dataDir: opts.dataDir,
      split,
      labels: labels !== "auto" && labels !== "none" ? labels : undefined,
    });
  const [train, test] = [await open("train"), await open("test")];
  const stored = [channels, height, width];
  if (train.inputShape.join(",") !== stored.join(",")) {
    throw new QuantizeError(
      `dataset '${train.name}' has samples of [${train.inputShape}] (C,H,W) but model input '${input.name}' takes ` +
        `[${input.sampleShape}] (${input.layout.toUpperCase()}); give data of the model's size, or an image folder (resized for you)`,
    );
  }
  const pick = (ds: Dataset, n: number, from = 0) =>
    new SubsetDataset(
      ds,
      Int32Array.from({ length: Math.min(n, ds.length - from) }, (_, i) => from + i),
    );
  // one file for both splits (an .npz, a class-folder tree): the held-out part is its tail
  const same = train.name === test.name;
  const heldN = Math.min(opts.evalSamples, same ? Math.floor(test.length / 2) : test.length);
  const heldOut = same ? pick(test, heldN, test.length - heldN) : pick(test, heldN);
  const calibration = pick(
    train,
    Math.min(opts.calibrationSamples, same ? train.length - heldN : train.length),
  );
  const labelled = labels !== "none" && train.numClasses > 0;
  const wrap = (ds: Dataset) => new PreprocessedDataset(ds, pre, input.layout, labelled);
  return {
    calibration: wrap(calibration),
    heldOut: wrap(heldOut),
    labelled,
    describe:
      `${train.name}: ${calibration.length} calibration samples (train split), ${heldOut.length} held out` +
      (same ? " (the last ones)" : " (test split)") +
      (labelled ? "" : ", labels not used"),
  };
}

/** Channels and size of the model's image input; an --input-size other than the model's is refused. */
export function imageDims(
  input: ModelInput,
  pre: Preprocess,
): { channels: number; height: number; width: number } {
  const s = input.sampleShape;
  if (s.length !== 3)
    throw new QuantizeError(
      `model input '${input.name}' is [${s}] per sample; qat quantize takes image models ([C,H,W] or [H,W,C])`,
    );
  const d =
    input.layout === "nhwc"
      ? { channels: s[2]!, height: s[0]!, width: s[1]! }
      : { channels: s[0]!, height: s[1]!, width: s[2]! };
  if (pre.inputSize && (pre.inputSize[0] !== d.height || pre.inputSize[1] !== d.width)) {
    throw new QuantizeError(
      `--input-size ${pre.inputSize.join("x")}: model input '${input.name}' takes [${input.sampleShape}] per sample ` +
        `(${input.layout.toUpperCase()}, ${d.height}x${d.width}); it cannot take another size. Give ${d.height}x${d.width} or leave the flag out`,
    );
  }
  return d;
}

/** A folder with no sub-folders, or with images directly in it, that holds no IDX/CIFAR files. */
function isUnlabelledFolder(spec: string): boolean {
  if (!existsSync(spec) || !statSync(spec).isDirectory()) return false;
  const entries = readdirSync(spec, { withFileTypes: true });
  if (entries.some((e) => /(idx[13]-ubyte|\.bin)(\.gz)?$/.test(e.name))) return false;
  return entries.some((e) => e.isFile() && IMAGE.test(e.name)) || !entries.some((e) => e.isDirectory());
}

function imageFolderData(
  root: string,
  input: ModelInput,
  o: {
    evalSamples: number;
    calibrationSamples: number;
    seed: number;
    height: number;
    width: number;
    channels: 1 | 3;
    pre: Preprocess;
  },
): QuantizeData {
  const base = {
    size: [o.height, o.width] as [number, number],
    channels: o.channels,
    fit: o.pre.fit === "letterbox" ? ("letterbox" as const) : ("stretch" as const),
    layout: input.layout,
  };
  const whole = openImageSet(root, base);
  checkDecodes(whole);
  const n = whole.length;
  const wrap = (ds: Dataset) => new PreprocessedDataset(ds, o.pre, input.layout, false);
  if (n < FEW_IMAGES) {
    // a few photos: seeded random crops, different seeds for the two parts (the held-out crops are unseen views)
    const crops = (count: number, seed: number) => {
      const set = openImageSet(root, {
        ...base,
        crops: { perImage: Math.max(1, Math.ceil(count / n)), seed },
      });
      // items run image by image: a stride over them keeps every photo in a part cut to `count`
      const stride = set.length / count;
      return new SubsetDataset(
        set,
        Int32Array.from({ length: count }, (_, i) => Math.floor(i * stride)),
      );
    };
    const calibration = crops(o.calibrationSamples, o.seed);
    const heldOut = crops(o.evalSamples, o.seed + 1);
    return {
      calibration: wrap(calibration),
      heldOut: wrap(heldOut),
      labelled: false,
      describe: `${root}: ${n} images, ${calibration.length} random crops for calibration, ${heldOut.length} other crops held out`,
    };
  }
  // every fifth image held out, whole
  const held = Int32Array.from({ length: n }, (_, i) => i).filter((i) => i % 5 === 0);
  const rest = Int32Array.from({ length: n }, (_, i) => i).filter((i) => i % 5 !== 0);
  return {
    calibration: wrap(new SubsetDataset(whole, rest.slice(0, o.calibrationSamples))),
    heldOut: wrap(new SubsetDataset(whole, held.slice(0, o.evalSamples))),
    labelled: false,
    describe: `${root}: ${n} images, ${Math.min(rest.length, o.calibrationSamples)} for calibration, ${Math.min(held.length, o.evalSamples)} held out (every fifth)`,
  };
}

/** Decode every image once now, so a corrupt file stops the run before any work (and before anything is written). */
function checkDecodes(ds: Dataset): void {
  const size = sampleSize(ds.inputShape);
  const x = new Float32Array(size);
  const y = new BigInt64Array(1);
  for (let i = 0; i < ds.length; i++) {
    try {
      ds.fill([i], x, y);
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(`cannot read the image (${(e as Error).message}); remove or replace it`, {
        item: i,
      });
    }
  }
}

/**
 * Samples as the model takes them: (stored · scale − mean) / std on the channel axis, and [C,H,W] stored samples
 * transposed to [H,W,C] for a channels-last model (image folders already give the model's layout).
 */
export class PreprocessedDataset implements Dataset {
  readonly name: string;
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly length: number;
  private readonly toHwc: boolean;
  private readonly gain: Float32Array;
  private readonly shift: Float32Array;
  private scratch = new Float32Array(0);

  constructor(
    readonly base: Dataset,
    pre: Preprocess,
    readonly layout: "nchw" | "nhwc",
    labelled: boolean,
  ) {
    this.name = base.name;
    this.numClasses = labelled ? base.numClasses : 0;
    this.length = base.length;
    const s = base.inputShape;
    // labelled datasets store [C,H,W]; image sets already store the model's layout
    this.toHwc = layout === "nhwc" && s.length === 3 && !(s[2] === 1 || s[2] === 3);
    this.inputShape = this.toHwc ? [s[1]!, s[2]!, s[0]!] : [...s];
    const channels = layout === "nhwc" ? this.inputShape[2]! : this.inputShape[0]!;
    const scale = pre.scale ?? 1;
    const mean = pre.mean ?? [0];
    const std = pre.std ?? [1];
    for (const [what, v] of [
      ["--mean", mean],
      ["--std", std],
    ] as const) {
      if (v.length !== 1 && v.length !== channels)
        throw new QuantizeError(
          `${what} has ${v.length} values but the model input has ${channels} channels`,
        );
    }
    if (!(scale > 0) || std.some((v) => !(v > 0)))
      throw new QuantizeError(`--scale and --std must be positive, got ${scale} and [${std}]`);
    const at = (v: number[], c: number) => v[v.length === 1 ? 0 : c]!;
    this.gain = Float32Array.from({ length: channels }, (_, c) => scale / at(std, c));
    this.shift = Float32Array.from({ length: channels }, (_, c) => at(mean, c) / at(std, c));
  }

  stats(): ChannelStats {
    return this.base.stats();
  }

  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx?: FillContext): void {
    if (this.scratch.length < x.length) this.scratch = new Float32Array(x.length);
    const raw = this.toHwc ? this.scratch.subarray(0, x.length) : x;
    this.base.fill(indices, raw, y, ctx);
    if (!this.labelled()) y.fill(-1n);
    const c = this.gain.length;
    const per = sampleSize(this.inputShape);
    const plane = per / c;
    for (let k = 0; k < indices.length; k++) {
      const o = k * per;
      for (let ch = 0; ch < c; ch++) {
        const g = this.gain[ch]!;
        const sh = this.shift[ch]!;
        for (let p = 0; p < plane; p++) {
          if (this.toHwc) x[o + p * c + ch] = raw[o + ch * plane + p]! * g - sh;
          else if (this.layout === "nhwc") x[o + p * c + ch] = x[o + p * c + ch]! * g - sh;
          else x[o + ch * plane + p] = x[o + ch * plane + p]! * g - sh;
        }
      }
    }
  }

  private labelled(): boolean {
    return this.numClasses > 0;
  }
}
