/**
 * The Ultralytics YOLO layout: a `data.yaml` naming the classes and each split's image folder, images under
 * `images/<split>/` and one label file per image under `labels/<split>/` (same name, `.txt`) with one line
 * `class cx cy w h` per object, normalised to [0, 1]. An image without a label file has no objects; a label file
 * without an image is an error (the two folders disagree).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { DataError } from "../data/errors.js";
import { fromNormalized, type LabeledBox } from "./boxes.js";
import { parseDataYaml } from "./data-yaml.js";
import type { DetectionImage, DetectionSet } from "./dataset.js";
import { readImageSize } from "./dataset.js";

export type YoloSplit = "train" | "val" | "test";

/** How far a normalised value may stray outside [0, 1] (rounding in the tools that wrote it) before it is an error. */
export const BOX_EPSILON = 1e-3;

const DECODABLE = new Set([".png", ".jpg", ".jpeg"]);
const OTHER_IMAGES = new Set([".bmp", ".webp", ".tif", ".tiff", ".dng", ".mpo", ".heic", ".pfm", ".gif"]);

/** Open one split of a YOLO-layout dataset, given its data.yaml or the folder holding it. */
export function openYoloDataset(yamlOrDir: string, split: YoloSplit = "train"): DetectionSet {
  const yamlFile = findYaml(yamlOrDir);
  const yaml = parseDataYaml(readFileSync(yamlFile, "utf8"), yamlFile);
  const yamlDir = dirname(resolve(yamlFile));
  const root = yaml.path === undefined ? yamlDir : resolve(yamlDir, yaml.path);
  const sources = yaml[split];
  if (!sources)
    throw new DataError(`no \`${split}:\` entry; add the ${split} images folder (e.g. images/${split})`, {
      file: yamlFile,
    });
  const images: DetectionImage[] = [];
  for (const src of sources) {
    const at = isAbsolute(src) ? src : join(root, src);
    const files = imageFiles(at, yamlFile);
    for (const file of files) images.push(readImage(file, yaml.names.length));
    if (existsSync(at) && statSync(at).isDirectory()) checkOrphanLabels(at, files);
  }
  return { name: `${basename(yamlDir)}-${split}`, classNames: yaml.names, images };
}

function findYaml(p: string): string {
  if (!existsSync(p))
    throw new DataError("not found: give a data.yaml or the folder that holds it", { file: p });
  if (!statSync(p).isDirectory()) return p;
  for (const name of ["data.yaml", "data.yml"]) if (existsSync(join(p, name))) return join(p, name);
  throw new DataError("the folder has no data.yaml (the YOLO layout's class names and split folders)", {
    file: p,
  });
}

/** The images of a split: a folder (searched recursively) or a .txt list of image paths. */
function imageFiles(at: string, yamlFile: string): string[] {
  if (!existsSync(at))
    throw new DataError(`split folder ${at} does not exist; fix the path in the yaml`, { file: yamlFile });
  if (statSync(at).isDirectory()) {
    const out: string[] = [];
    walk(at, out);
    return out.sort();
  }
  if (extname(at) === ".txt") {
    const dir = dirname(at);
    return readFileSync(at, "utf8")
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== "")
      .map((l) => (isAbsolute(l) ? l : join(dir, l)));
  }
  throw new DataError(`split entry ${at} is neither a folder of images nor a .txt list of them`, {
    file: yamlFile,
  });
}

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else {
      const ext = extname(e.name).toLowerCase();
      if (DECODABLE.has(ext)) out.push(p);
      else if (OTHER_IMAGES.has(ext))
        throw new DataError(`${ext} images are not supported; convert the set to PNG or JPEG`, { file: p });
    }
  }
}

/** Where Ultralytics looks for an image's labels: the last /images/ of the path becomes /labels/, the extension .txt. */
export function labelPathFor(imageFile: string): string {
  const marker = `${sep}images${sep}`;
  const at = imageFile.lastIndexOf(marker);
  const swapped =
    at < 0 ? imageFile : imageFile.slice(0, at) + `${sep}labels${sep}` + imageFile.slice(at + marker.length);
  return swapped.slice(0, swapped.length - extname(swapped).length) + ".txt";
}

function readImage(file: string, numClasses: number): DetectionImage {
  const { width, height } = readImageSize(file);
  const labelFile = labelPathFor(file);
  if (!existsSync(labelFile)) return { file, width, height, objects: [] };
  const objects = parseLabelFile(readFileSync(labelFile, "utf8"), labelFile, numClasses, width, height);
  return { file, width, height, objects, labelFile };
}

/** The objects of one label file, in pixels of a width × height image; every problem names the file and line. */
export function parseLabelFile(
  text: string,
  file: string,
  numClasses: number,
  width: number,
  height: number,
): LabeledBox[] {
  const out: LabeledBox[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (t === "") continue;
    const where = { file, line: i + 1 };
    const fields = t.split(/\s+/);
    if (fields.length !== 5) {
      const hint =
        fields.length > 5 && fields.length % 2 === 1 ? " (segmentation polygons are not supported)" : "";
      throw new DataError(`${fields.length} fields; expected 5: class cx cy w h${hint}`, where);
    }
    // some tools write the class as a float ("3.0"), which Ultralytics accepts too
    const cls = Number(fields[0]);
    if (!Number.isInteger(cls) || cls < 0 || cls >= numClasses)
      throw new DataError(
        `class "${fields[0]}" is not a class index 0..${numClasses - 1} (${numClasses} names in data.yaml)`,
        where,
      );
    const [cx, cy, w, h] = fields.slice(1).map(Number) as [number, number, number, number];
    fields.slice(1).forEach((f, k) => {
      if (!Number.isFinite(Number(f)))
        throw new DataError(`${["cx", "cy", "w", "h"][k]} "${f}" is not a number`, where);
    });
    if (!(w > 0 && h > 0))
      throw new DataError(`box has width ${w} and height ${h}; both must be positive`, where);
    const edges = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
    if ([cx, cy, w, h, ...edges].some((v) => v < -BOX_EPSILON || v > 1 + BOX_EPSILON))
      throw new DataError(
        `box ${cx} ${cy} ${w} ${h} reaches outside the image (edges ${edges.map((v) => +v.toFixed(6)).join(", ")}); ` +
          "values are normalised to [0, 1]",
        where,
      );
    const b = fromNormalized({ cx, cy, w, h }, width, height);
    out.push({
      cls,
      box: {
        x1: Math.max(0, b.x1),
        y1: Math.max(0, b.y1),
        x2: Math.min(width, b.x2),
        y2: Math.min(height, b.y2),
      },
    });
  }
  return out;
}

/** Label files in the split's labels folder whose image is missing: the folders disagree. */
function checkOrphanLabels(imageDir: string, images: readonly string[]): void {
  const labelDir = labelPathFor(join(imageDir, "x.png")).slice(0, -"x.txt".length);
  if (!existsSync(labelDir) || !statSync(labelDir).isDirectory()) return;
  const expected = new Set(images.map(labelPathFor));
  const orphans: string[] = [];
  const collect = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) collect(p);
      else if (e.name.endsWith(".txt") && !expected.has(p)) orphans.push(p);
    }
  };
  collect(labelDir);
  if (orphans.length > 0) {
    orphans.sort();
    const shown = orphans.slice(0, 5).map((p) => relative(labelDir, p));
    throw new DataError(
      `${orphans.length} label file(s) in ${labelDir} have no image in ${imageDir}: ${shown.join(", ")}` +
        `${orphans.length > 5 ? ", ..." : ""}; add the images or remove the labels`,
      { file: orphans[0]! },
    );
  }
}
