/**
 * A detection dataset as lists: each image's file, size and ground-truth boxes (in pixels), read from a YOLO layout
 * or a COCO JSON file. Pixels are decoded only when asked for (`loadImage`), so opening 100k images reads only
 * their headers.
 */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { DataError } from "../data/errors.js";
import { decodeImage, type Image8, type ImageHeader, readImageHeader } from "../data/image.js";
import type { LabeledBox } from "./boxes.js";

export interface DetectionImage {
  /** Path of the image file. */
  file: string;
  width: number;
  height: number;
  /** Ground truth, in pixels of this image. */
  objects: LabeledBox[];
  /** The file the boxes came from (a YOLO label file, a COCO JSON), for messages. */
  labelFile?: string;
}

export interface DetectionSet {
  name: string;
  /** Class names in index order; `cls` of every object indexes this list. */
  classNames: string[];
  images: DetectionImage[];
  /** COCO only: the category id of each class index (COCO ids have gaps). */
  categoryIds?: number[];
}

/** Width and height from the image file's header, reading only as much of the file as the header needs. */
export function readImageSize(file: string): ImageHeader {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new DataError(`cannot open image (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      file,
    });
  }
  try {
    // JPEG headers can sit after large EXIF blocks: read more until the frame header is in
    for (let size = 4096; ; size *= 4) {
      const head = new Uint8Array(size);
      const n = readSync(fd, head, 0, size, 0);
      const header = readImageHeader(head.subarray(0, n), file);
      if (header) return header;
      if (n < size)
        throw new DataError("unreadable image: the file ends before its header is complete", { file });
    }
  } finally {
    closeSync(fd);
  }
}

/** Decode an image of the set; it must have the size its header (and so its boxes) promised. */
export function loadImage(img: DetectionImage): Image8 {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(img.file);
  } catch (e) {
    throw new DataError(`cannot read image (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      file: img.file,
    });
  }
  const out = decodeImage(bytes, img.file);
  if (out.width !== img.width || out.height !== img.height) {
    throw new DataError(
      `image is ${out.width}×${out.height}, but its labels were read for ${img.width}×${img.height}; ` +
        "re-open the dataset after changing images",
      { file: img.file },
    );
  }
  return out;
}

/** Decode every image once, so a damaged file is reported now (with its path) rather than mid-training. */
export function verifyImages(set: DetectionSet): void {
  for (const img of set.images) loadImage(img);
}
