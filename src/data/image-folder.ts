import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { extname, join, relative } from "node:path";
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
import { decodeImage, type ImageHeader, readImageHeader, writeChw } from "./image.js";
import { checkPixels, readRegularFile } from "./limits.js";

const EXTENSIONS = new Set([".png", ".jpg", ".jpeg"]);

export interface ImageFolderOptions {
  name?: string;
  /** 1 (grey) or 3 (RGB). Default: 1 when every image is grey, else 3. */
  channels?: 1 | 3;
  /** Fix the class list and order (e.g. the training set's, when opening a test folder). Default: sorted folders. */
  classNames?: readonly string[];
  /** Images sampled (evenly spaced) to estimate the channel statistics (default 1000). */
  statsSamples?: number;
}

export interface ImageEntry {
  path: string;
  label: number;
}

/**
 * A folder with one sub-folder per class, holding PNG and JPEG images (sub-folders inside a class folder are
 * searched too). Opening reads only the file headers: it lists the images and checks they all have one size.
 * Pixels are decoded lazily, batch by batch, in `fill`, so memory stays bounded by the loader's batches.
 */
export class ImageFolderDataset implements Dataset {
  readonly name: string;
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly length: number;
  readonly entries: readonly ImageEntry[];
  private readonly channels: 1 | 3;
  private readonly statsSamples: number;
  private cachedStats: ChannelStats | undefined;

  constructor(
    readonly root: string,
    opts: ImageFolderOptions = {},
  ) {
    this.name = opts.name ?? root;
    let dirs: string[];
    try {
      if (!statSync(root).isDirectory())
        throw new DataError("expected a folder of class folders", { file: root });
      dirs = readdirSync(root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && !d.name.startsWith("."))
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(`image folder not found or unreadable (${errCode(e)}); check the path`, {
        file: root,
      });
    }
    const classNames = opts.classNames ? [...opts.classNames] : dirs;
    if (classNames.length === 0) {
      throw new DataError("no class folders: put each class's images in a sub-folder named after the class", {
        file: root,
      });
    }
    const unknown = dirs.filter((d) => !classNames.includes(d));
    if (unknown.length > 0) {
      throw new DataError(
        `folder(s) ${unknown.join(", ")} are not among the ${classNames.length} given classes; ` +
          "remove them or add the classes",
        { file: root },
      );
    }
    const entries: ImageEntry[] = [];
    const headers: ImageHeader[] = [];
    for (let label = 0; label < classNames.length; label++) {
      const dir = join(root, classNames[label]!);
      const files = dirs.includes(classNames[label]!) ? listImages(dir) : [];
      if (files.length === 0 && !opts.classNames) {
        throw new DataError("class folder has no PNG or JPEG images; add images or remove the folder", {
          file: dir,
        });
      }
      for (const f of files) {
        entries.push({ path: f, label });
        headers.push(readHeader(f));
      }
    }
    if (entries.length === 0)
      throw new DataError("no PNG or JPEG images in the class folders", { file: root });

    const first = headers[0]!;
    const odd = headers
      .map((h, i) => ({ h, i }))
      .filter(({ h }) => h.width !== first.width || h.height !== first.height);
    if (odd.length > 0) {
      const list = odd
        .slice(0, 5)
        .map(({ h, i }) => `${relative(root, entries[i]!.path)} is ${h.width}×${h.height}`)
        .join("; ");
      throw new DataError(
        `images must all have one size: ${relative(root, entries[0]!.path)} is ${first.width}×${first.height} ` +
          `(width×height), but ${list}${odd.length > 5 ? `; and ${odd.length - 5} more` : ""}. ` +
          "Resize them to one size first",
        { file: entries[odd[0]!.i]!.path },
      );
    }
    this.channels = opts.channels ?? (headers.every((h) => h.channels === 1) ? 1 : 3);
    this.inputShape = [this.channels, first.height, first.width];
    this.classNames = classNames;
    this.numClasses = classNames.length;
    this.entries = entries;
    this.length = entries.length;
    this.statsSamples = opts.statsSamples ?? 1000;
  }

  /** Channel statistics estimated from up to `statsSamples` evenly spaced images (all of them if fewer). */
  stats(): ChannelStats {
    if (!this.cachedStats) {
      const m = Math.min(this.length, this.statsSamples);
      const idx = Array.from({ length: m }, (_, k) => Math.floor((k * this.length) / m));
      const size = sampleSize(this.inputShape);
      const x = new Float32Array(m * size);
      this.fill(idx, x, new BigInt64Array(m));
      this.cachedStats = channelStats(x, this.inputShape);
    }
    return this.cachedStats;
  }

  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, _ctx?: FillContext): void {
    const size = sampleSize(this.inputShape);
    checkBatch(indices, x, y, size, this.length, this.name);
    const [, h, w] = this.inputShape as [number, number, number];
    for (let k = 0; k < indices.length; k++) {
      const e = this.entries[indices[k]!]!;
      const bytes = readRegularFile(e.path, "image");
      const img = decodeImage(bytes, e.path);
      if (img.width !== w || img.height !== h) {
        throw new DataError(
          `image is ${img.width}×${img.height} (width×height) but the dataset's images are ${w}×${h}; ` +
            "resize it or remove it",
          { file: e.path },
        );
      }
      writeChw(img, this.channels, x, k * size);
      y[k] = BigInt(e.label);
    }
  }
}

/** Open an image folder dataset. */
export function openImageFolder(root: string, opts: ImageFolderOptions = {}): ImageFolderDataset {
  return new ImageFolderDataset(root, opts);
}

/**
 * The PNG/JPEG files under `dir`, sorted, recursing into sub-folders (not into symlinked folders: a link loop
 * cannot make the walk endless). Image-named entries that are not regular files — FIFOs, devices, sockets, or
 * symlinks resolving to one — are refused here, by name, before anything is opened.
 */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const ent of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (ent.name.startsWith(".")) continue;
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (EXTENSIONS.has(extname(ent.name).toLowerCase())) {
        checkRegular(p);
        out.push(p);
      }
    }
  };
  walk(dir);
  return out;
}

function checkRegular(p: string): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(p); // follows symlinks: the target is what would be read
  } catch (e) {
    throw new DataError(`cannot read the image (${errCode(e)}); a broken symlink? remove it`, { file: p });
  }
  if (!st.isFile()) {
    const kind = st.isFIFO()
      ? "a FIFO (named pipe)"
      : st.isCharacterDevice() || st.isBlockDevice()
        ? "a device"
        : st.isDirectory()
          ? "a folder"
          : "not a regular file";
    throw new DataError(
      `is ${kind} (symlinks are followed), not a regular image file; image folders may hold only regular files: remove it`,
      { file: p },
    );
  }
}

/**
 * Read just enough of the file for its size: 64 KiB, or the whole file when a JPEG's frame header is later. The
 * file is opened non-blocking and checked on its descriptor (the listing's check could be raced by a swap).
 */
export function readHeader(path: string, maxPixels?: number): ImageHeader {
  let head: Uint8Array;
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!fstatSync(fd).isFile())
        throw new DataError("is not a regular image file; remove it", { file: path });
      const buf = Buffer.alloc(65536);
      head = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`cannot read the image (${errCode(e)})`, { file: path });
  }
  const h = readImageHeader(head, path) ?? readImageHeader(readRegularFile(path, "image"), path);
  if (!h)
    throw new DataError("unreadable image: the file ends inside its header; replace it", { file: path });
  checkPixels(h.width, h.height, path, maxPixels);
  return h;
}
