/**
 * COCO JSON detection annotations: `images` (id, file_name, width, height), `annotations` (image_id, category_id,
 * bbox [x, y, width, height] in pixels) and `categories` (id, name). Category ids may have gaps (COCO's run 1..90
 * for 80 classes): classes are numbered 0.. in id order and `categoryIds` maps back. Crowd annotations
 * (iscrowd = 1) are left out: the mAP here has no crowd regions, and a crowd box is not one object.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DataError } from "../data/errors.js";
import { clipBox, fromXywh } from "./boxes.js";
import type { DetectionImage, DetectionSet } from "./dataset.js";

export interface CocoOptions {
  /** Folder the images' file_name are relative to (default: the JSON file's folder). */
  imageDir?: string;
}

/** How far (in pixels) a box may stray outside its image before it is an error. */
const PIXEL_SLACK = 1;

/** Open a COCO JSON annotation file as a detection set. */
export function openCocoDataset(jsonFile: string, opts: CocoOptions = {}): DetectionSet {
  let text: string;
  try {
    text = readFileSync(jsonFile, "utf8");
  } catch (e) {
    throw new DataError(`cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      file: jsonFile,
    });
  }
  return parseCoco(text, jsonFile, opts.imageDir ?? dirname(jsonFile));
}

/** Parse the text of a COCO annotation file; image paths are joined to `imageDir`. */
export function parseCoco(text: string, file: string, imageDir: string): DetectionSet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    const line = pos ? text.slice(0, Number(pos[1])).split("\n").length : undefined;
    throw new DataError(`not valid JSON (${msg})`, { file, ...(line ? { line } : {}) });
  }
  const root = doc as Record<string, unknown>;
  const list = (key: string): Record<string, unknown>[] => {
    const v = root?.[key];
    if (!Array.isArray(v))
      throw new DataError(`no "${key}" array: not a COCO detection annotation file`, { file });
    return v as Record<string, unknown>[];
  };
  const categories = list("categories");
  const cats = categories.map((c, i) => ({
    id: intField(c, "id", `categories[${i}]`, file),
    name: typeof c.name === "string" ? c.name : String(c.id),
  }));
  cats.sort((a, b) => a.id - b.id);
  const classOf = new Map<number, number>();
  cats.forEach((c, k) => {
    if (classOf.has(c.id)) throw new DataError(`category id ${c.id} appears twice`, { file });
    classOf.set(c.id, k);
  });
  const images: DetectionImage[] = [];
  const byId = new Map<number, DetectionImage>();
  list("images").forEach((im, i) => {
    const at = `images[${i}]`;
    const id = intField(im, "id", at, file);
    if (typeof im.file_name !== "string") throw new DataError(`${at} has no file_name`, { file, item: i });
    const width = intField(im, "width", at, file);
    const height = intField(im, "height", at, file);
    if (byId.has(id)) throw new DataError(`${at}: image id ${id} appears twice`, { file, item: i });
    const img: DetectionImage = {
      file: join(imageDir, im.file_name),
      width,
      height,
      objects: [],
      labelFile: file,
    };
    byId.set(id, img);
    images.push(img);
  });
  list("annotations").forEach((a, i) => {
    const at = `annotations[${i}]${a.id !== undefined ? ` (id ${a.id})` : ""}`;
    const img = byId.get(intField(a, "image_id", at, file));
    if (!img) throw new DataError(`${at}: image_id ${a.image_id} is not in "images"`, { file, item: i });
    const cls = classOf.get(intField(a, "category_id", at, file));
    if (cls === undefined)
      throw new DataError(`${at}: category_id ${a.category_id} is not in "categories"`, { file, item: i });
    if (a.iscrowd === 1) return;
    const bb = a.bbox;
    if (
      !Array.isArray(bb) ||
      bb.length !== 4 ||
      !bb.every((v) => typeof v === "number" && Number.isFinite(v))
    )
      throw new DataError(`${at}: bbox must be [x, y, width, height] in pixels`, { file, item: i });
    const [x, y, w, h] = bb as [number, number, number, number];
    if (!(w > 0 && h > 0))
      throw new DataError(`${at}: bbox width ${w} and height ${h} must be positive`, { file, item: i });
    const s = PIXEL_SLACK;
    if (x < -s || y < -s || x + w > img.width + s || y + h > img.height + s)
      throw new DataError(
        `${at}: bbox [${bb.join(", ")}] reaches outside its ${img.width}×${img.height} image`,
        { file, item: i },
      );
    img.objects.push({ cls, box: clipBox(fromXywh(x, y, w, h), img.width, img.height) });
  });
  return {
    name: file,
    classNames: cats.map((c) => c.name),
    images,
    categoryIds: cats.map((c) => c.id),
  };
}

function intField(o: Record<string, unknown>, key: string, at: string, file: string): number {
  const v = o?.[key];
  if (typeof v !== "number" || !Number.isInteger(v))
    throw new DataError(`${at}: "${key}" must be a whole number, got ${JSON.stringify(v)}`, { file });
  return v;
}
