/**
 * An unlabelled image folder: PNG/JPEG files directly in the folder (sub-folders are searched too; nothing is a
 * class), resized or letterboxed to a requested H×W, converted to the requested channels, in NCHW or NHWC order.
 * Used where no labels exist: calibration, fidelity to a float model, distillation. A few photos can be multiplied
 * into many samples by seeded random crops (a random area and aspect ratio, then resized, optionally mirrored):
 * the crop of item i depends only on (seed, epoch, i).
 */
import { statSync } from "node:fs";
import { Rng } from "../util/rng.js";
import {
  type ChannelStats,
  channelStats,
  checkBatch,
  type Dataset,
  type FillContext,
  sampleSize,
} from "./dataset.js";
import { DataError } from "./errors.js";
import { errCode } from "./files.js";
import { decodeImage } from "./image.js";
import { listImages, readHeader } from "./image-folder.js";
import { readRegularFile } from "./limits.js";
import { type Fit, type Region, resample, writeLayout } from "./resample.js";
import { mixSeed, SEED_TAG } from "./seed.js";

export interface RandomCrops {
  /** Samples drawn from each image (the dataset's length is images × perImage). */
  perImage: number;
  seed: number;
  /** Smallest crop area as a fraction of the image (default 0.25). */
  minArea?: number;
  /** Aspect ratio (width/height) range of a crop, drawn log-uniformly (default [3/4, 4/3]). */
  aspect?: [number, number];
  /** Mirror with probability 1/2 (default true). */
  flip?: boolean;
}

export interface ImageSetOptions {
  /** Output height and width. */
  size: [number, number];
  /** 1 (grey) or 3 (RGB) channels in the output (default 3); files of either kind are converted. */
  channels?: 1 | 3;
  /** "stretch" to exactly H×W (default) or "letterbox" (keep the aspect ratio, pad with `padValue`). */
  fit?: Fit;
  padValue?: number;
  /** "nchw" (default) gives samples [C,H,W]; "nhwc" gives [H,W,C]. */
  layout?: "nchw" | "nhwc";
  /** Multiply the images by seeded random crops; without it each image is one sample, whole. */
  crops?: RandomCrops;
  /** Largest width × height a file may declare (default 64 megapixels). */
  maxPixels?: number;
  name?: string;
}

/** The crop drawn for one item: a region of its image and whether it is mirrored. */
export function drawCrop(width: number, height: number, crops: RandomCrops, item: number, epoch = 0) {
  const rng = new Rng(mixSeed(crops.seed, epoch, item, SEED_TAG.augment));
  const minArea = crops.minArea ?? 0.25;
  const [a0, a1] = crops.aspect ?? [3 / 4, 4 / 3];
  const area = width * height;
  // as Inception-style random-resized crops: try a few draws, fall back to the whole image
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.uniform(minArea, 1);
    const ratio = Math.exp(rng.uniform(Math.log(a0), Math.log(a1)));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w >= 1 && h >= 1 && w <= width && h <= height) {
      const region: Region = { x: rng.int(width - w + 1), y: rng.int(height - h + 1), width: w, height: h };
      return { region, flip: (crops.flip ?? true) && rng.next() < 0.5 };
    }
  }
  return { region: { x: 0, y: 0, width, height }, flip: (crops.flip ?? true) && rng.next() < 0.5 };
}

export class ImageSetDataset implements Dataset {
  readonly name: string;
  readonly inputShape: readonly number[];
  /** No labels: 0 classes; `fill` writes -1 as every label. */
  readonly numClasses = 0;
  readonly length: number;
  readonly files: readonly string[];
  private readonly dims: { width: number; height: number }[];
  private cachedStats: ChannelStats | undefined;

  constructor(
    readonly root: string,
    readonly opts: ImageSetOptions,
  ) {
    this.name = opts.name ?? root;
    const [h, w] = opts.size;
    if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
      throw new DataError(`the input size must be two positive integers (H×W), got ${opts.size.join("×")}`);
    }
    const per = opts.crops?.perImage ?? 1;
    if (!(Number.isInteger(per) && per >= 1)) {
      throw new DataError(`crops per image must be a positive integer, got ${per}`);
    }
    try {
      if (!statSync(root).isDirectory()) throw new DataError("expected a folder of images", { file: root });
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(`image folder not found or unreadable (${errCode(e)}); check the path`, {
        file: root,
      });
    }
    this.files = listImages(root);
    if (this.files.length === 0) {
      throw new DataError(
        "the folder has no PNG or JPEG images (.png, .jpg, .jpeg); add images or check the path",
        {
          file: root,
        },
      );
    }
    // headers only: every file is checked (regular file, readable header, pixel cap) before anything is decoded
    this.dims = this.files.map((f) => readHeader(f, opts.maxPixels));
    const c = opts.channels ?? 3;
    this.inputShape = (opts.layout ?? "nchw") === "nchw" ? [c, h, w] : [h, w, c];
    this.length = this.files.length * per;
  }

  /** The image and crop behind item `i`. */
  source(i: number, epoch = 0): { file: string; region: Region; flip: boolean } {
    const per = this.opts.crops?.perImage ?? 1;
    const k = Math.floor(i / per);
    const { width, height } = this.dims[k]!;
    const crop = this.opts.crops
      ? drawCrop(width, height, this.opts.crops, i, epoch)
      : { region: { x: 0, y: 0, width, height }, flip: false };
    return { file: this.files[k]!, ...crop };
  }

  stats(): ChannelStats {
    if (!this.cachedStats) {
      const m = Math.min(this.length, 256);
      const idx = Array.from({ length: m }, (_, k) => Math.floor((k * this.length) / m));
      const x = new Float32Array(m * sampleSize(this.inputShape));
      this.fill(idx, x, new BigInt64Array(m));
      // channelStats reads [C,H,W] samples: NHWC batches are transposed for it
      const [a, b, c] = this.inputShape as [number, number, number];
      this.cachedStats =
        (this.opts.layout ?? "nchw") === "nchw"
          ? channelStats(x, this.inputShape)
          : channelStats(toChw(x, m, this.inputShape), [c, a, b]);
    }
    return this.cachedStats;
  }

  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx?: FillContext): void {
    const size = sampleSize(this.inputShape);
    checkBatch(indices, x, y, size, this.length, this.name);
    const [h, w] = this.opts.size;
    const channels = this.opts.channels ?? 3;
    const decoded = new Map<string, ReturnType<typeof decodeImage>>();
    for (let k = 0; k < indices.length; k++) {
      const src = this.source(indices[k]!, ctx?.epoch ?? 0);
      let img = decoded.get(src.file);
      if (!img) {
        img = decodeImage(readRegularFile(src.file, "image"), src.file, this.opts.maxPixels);
        decoded.set(src.file, img); // crops of one photo usually share a batch: decode it once per batch
      }
      const { data } = resample(img, src.region, h, w, {
        fit: this.opts.fit,
        padValue: this.opts.padValue,
        flip: src.flip,
      });
      writeLayout(data, img.channels, h * w, channels, this.opts.layout ?? "nchw", x, k * size);
      y[k] = -1n;
    }
  }
}

function toChw(x: Float32Array, m: number, hwc: readonly number[]): Float32Array {
  const [h, w, c] = hwc as [number, number, number];
  const out = new Float32Array(x.length);
  const n = h * w;
  for (let s = 0; s < m; s++)
    for (let p = 0; p < n; p++)
      for (let ch = 0; ch < c; ch++) out[s * n * c + ch * n + p] = x[s * n * c + p * c + ch]!;
  return out;
}

/** Open a folder of unlabelled images (see ImageSetDataset). */
export function openImageSet(root: string, opts: ImageSetOptions): ImageSetDataset {
  return new ImageSetDataset(root, opts);
}
