import { Rng } from "../util/rng.js";
import { type ChannelStats, checkBatch, type Dataset, type FillContext, sampleSize } from "./dataset.js";
import { mixSeed, SEED_TAG } from "./seed.js";

export interface AugmentOptions {
  seed: number;
  /** Random crop back to the input size after padding each side by this many pixels (0 = no crop). */
  cropPadding?: number;
  /** Value written into the padding (as stored: 0 is black for 0–255 images). */
  padValue?: number;
  /** Flip horizontally with probability 1/2. */
  flip?: boolean;
}

/** What was drawn for one sample: the crop offset in the padded image and whether it is mirrored. */
export interface AugmentDraw {
  dy: number;
  dx: number;
  flip: boolean;
}

/**
 * Training-time augmentation applied inside `fill`: a random crop with zero padding and a horizontal flip, for
 * [C,H,W] images. The draw for an item depends only on (seed, epoch, item index), so it is the same whatever
 * batch the item lands in, and a resumed run sees the same images.
 */
export class AugmentedDataset implements Dataset {
  readonly name: string;
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  readonly length: number;
  private readonly pad: number;
  private readonly padValue: number;
  private readonly flip: boolean;
  private readonly seed: number;
  private scratch = new Float32Array(0);

  constructor(
    readonly base: Dataset,
    opts: AugmentOptions,
  ) {
    if (base.inputShape.length !== 3) {
      throw new RangeError(
        `${base.name}: crop and flip need images of shape [C,H,W], not [${base.inputShape}]; turn augmentation off`,
      );
    }
    this.pad = opts.cropPadding ?? 0;
    if (!(Number.isInteger(this.pad) && this.pad >= 0)) {
      throw new RangeError(`crop padding must be a whole number of pixels ≥ 0, got ${opts.cropPadding}`);
    }
    this.padValue = opts.padValue ?? 0;
    this.flip = opts.flip ?? false;
    this.seed = opts.seed;
    this.name = base.name;
    this.inputShape = base.inputShape;
    this.numClasses = base.numClasses;
    if (base.classNames) this.classNames = base.classNames;
    this.length = base.length;
  }

  stats(): ChannelStats {
    return this.base.stats();
  }

  /** The draw for item `index` in epoch `epoch`. */
  draw(epoch: number, index: number): AugmentDraw {
    const rng = new Rng(mixSeed(this.seed, SEED_TAG.augment, epoch, index));
    const span = 2 * this.pad + 1;
    const dy = this.pad > 0 ? rng.int(span) : 0;
    const dx = this.pad > 0 ? rng.int(span) : 0;
    const flip = this.flip ? rng.nextU32() >>> 31 === 1 : false;
    return { dy, dx, flip };
  }

  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx?: FillContext): void {
    const size = sampleSize(this.inputShape);
    checkBatch(indices, x, y, size, this.length, this.name);
    if (this.pad === 0 && !this.flip) {
      this.base.fill(indices, x, y, ctx);
      return;
    }
    if (this.scratch.length < size) this.scratch = new Float32Array(size);
    const src = this.scratch;
    this.base.fill(indices, x, y, ctx);
    const epoch = ctx?.epoch ?? 0;
    const [c, h, w] = this.inputShape as [number, number, number];
    for (let k = 0; k < indices.length; k++) {
      const out = x.subarray(k * size, k * size + size);
      src.set(out);
      const { dy, dx, flip } = this.draw(epoch, indices[k]!);
      // output (yy, xx) reads input (yy + dy - pad, xx' + dx - pad), with xx' mirrored when flipping
      const oy = dy - this.pad;
      const ox = dx - this.pad;
      for (let ch = 0; ch < c; ch++) {
        const plane = ch * h * w;
        for (let yy = 0; yy < h; yy++) {
          const sy = yy + oy;
          const row = plane + yy * w;
          if (sy < 0 || sy >= h) {
            out.fill(this.padValue, row, row + w);
            continue;
          }
          const srow = plane + sy * w;
          for (let xx = 0; xx < w; xx++) {
            const sx = (flip ? w - 1 - xx : xx) + ox;
            out[row + xx] = sx >= 0 && sx < w ? src[srow + sx]! : this.padValue;
          }
        }
      }
    }
  }
}

/** Wrap a training set with crop/flip augmentation. */
export function augment(ds: Dataset, opts: AugmentOptions): AugmentedDataset {
  return new AugmentedDataset(ds, opts);
}
