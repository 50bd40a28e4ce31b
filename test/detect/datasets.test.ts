import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encode } from "fast-png";
import { afterAll, describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.js";
import { openCocoDataset, parseCoco } from "../../src/detect/coco.js";
import { parseDataYaml } from "../../src/detect/data-yaml.js";
import { loadImage, verifyImages } from "../../src/detect/dataset.js";
import { labelPathFor, openYoloDataset } from "../../src/detect/yolo.js";
import { thrownDataError } from "../data/fixtures.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function png(w: number, h: number): Uint8Array {
  return encode({ width: w, height: h, data: new Uint8Array(w * h), channels: 1, depth: 8 });
}

/** A YOLO-layout set: images 40×20 named by `labels` keys (label text, or null for no label file). */
function yoloSet(
  labels: Record<string, string | null>,
  yaml = "train: images/train\nval: images/val\nnames: [a, b]\n",
): string {
  const root = mkdtempSync(join(tmpdir(), "qat-yolo-"));
  dirs.push(root);
  writeFileSync(join(root, "data.yaml"), yaml);
  for (const split of ["train", "val"]) {
    mkdirSync(join(root, "images", split), { recursive: true });
    mkdirSync(join(root, "labels", split), { recursive: true });
  }
  for (const [name, text] of Object.entries(labels)) {
    writeFileSync(join(root, "images", "train", `${name}.png`), png(40, 20));
    if (text !== null) writeFileSync(join(root, "labels", "train", `${name}.txt`), text);
  }
  return root;
}

describe("data.yaml", () => {
  it("reads names as a flow list, a block list, a block map and a flow map", () => {
    expect(parseDataYaml("names: ['a', \"b c\", d]  # three\n", "f").names).toEqual(["a", "b c", "d"]);
    expect(parseDataYaml("names:\n  - cat\n  - 'dog'\n", "f").names).toEqual(["cat", "dog"]);
    expect(parseDataYaml("names:\n  1: dog\n  0: cat # first\n", "f").names).toEqual(["cat", "dog"]);
    expect(parseDataYaml("names: {0: person, 1: 'traffic light'}\n", "f").names).toEqual([
      "person",
      "traffic light",
    ]);
    expect(parseDataYaml("names: [a,\n  b,\n  c]\n", "f").names).toEqual(["a", "b", "c"]);
  });

  it("reads path and splits, and skips keys it does not need", () => {
    const y = parseDataYaml(
      [
        "# COCO-like",
        "path: ../datasets/coco",
        "train: train2017.txt",
        "val: [images/val, images/extra]",
        "test:",
        "download: |",
        "  from utils import download",
        "  download(['http://x: y'])",
        "names:",
        "  0: person",
        "  1: bicycle",
        "nc: 2",
      ].join("\n"),
      "f",
    );
    expect(y).toEqual({
      path: "../datasets/coco",
      train: ["train2017.txt"],
      val: ["images/val", "images/extra"],
      names: ["person", "bicycle"],
    });
  });

  it("names the file and line of what it cannot read", () => {
    expect(thrownDataError(() => parseDataYaml("names: [a]\nnc: 2\n", "d.yaml")).message).toMatch(
      /^d\.yaml, line 2: nc: 2 but 1 names/,
    );
    expect(thrownDataError(() => parseDataYaml("train x\nnames: [a]\n", "d.yaml")).message).toMatch(
      /^d\.yaml, line 1: expected "key: value"/,
    );
    expect(thrownDataError(() => parseDataYaml("names: [a, b\n", "d.yaml")).message).toMatch(
      /line 1: flow collection: missing "\]"/,
    );
    expect(thrownDataError(() => parseDataYaml("names:\n  0: a\n  2: c\n", "d.yaml")).message).toMatch(
      /class 1 has no name/,
    );
    expect(thrownDataError(() => parseDataYaml("train: images\n", "d.yaml")).message).toMatch(
      /no `names:` key/,
    );
  });
});

describe("YOLO layout", () => {
  it("reads boxes in pixels; an image without a label file has no objects", () => {
    const root = yoloSet({ a: "0 0.5 0.5 0.5 0.5\n1 0.25 0.75 0.1 0.2\n", b: null, c: "\n" });
    const set = openYoloDataset(root, "train");
    expect(set.classNames).toEqual(["a", "b"]);
    expect(set.images.map((i) => i.objects.length)).toEqual([2, 0, 0]);
    const [first] = set.images;
    expect(first).toMatchObject({ width: 40, height: 20 });
    expect(first!.objects[0]).toEqual({ cls: 0, box: { x1: 10, y1: 5, x2: 30, y2: 15 } });
    expect(first!.objects[1]!.box.x1).toBeCloseTo(8, 12);
    expect(first!.objects[1]!.box.y2).toBeCloseTo(17, 12);
    expect(loadImage(first!).width).toBe(40);
    expect(openYoloDataset(join(root, "data.yaml"), "val").images).toEqual([]);
  });

  it("finds labels where Ultralytics does", () => {
    expect(labelPathFor("/d/images/train/images/x.jpeg")).toBe("/d/images/train/labels/x.txt");
    expect(labelPathFor("/d/images/val/sub/x.png")).toBe("/d/labels/val/sub/x.txt");
  });

  it("allows rounding just past the edge, not a box outside the image", () => {
    const root = yoloSet({ a: "0 0.5 0.5 1.0000004 1\n" });
    expect(openYoloDataset(root).images[0]!.objects[0]!.box).toEqual({ x1: 0, y1: 0, x2: 40, y2: 20 });
    const bad = yoloSet({ a: "0 0.5 0.5 0.2 0.2\n1 0.95 0.5 0.2 0.2\n" });
    const e = thrownDataError(() => openYoloDataset(bad));
    expect(e.message).toContain(join(bad, "labels", "train", "a.txt"));
    expect(e.message).toMatch(/line 2: box 0\.95 0\.5 0\.2 0\.2 reaches outside the image/);
  });

  it("reports a class id out of range with file and line", () => {
    const root = yoloSet({ a: "0 0.5 0.5 0.2 0.2\n\n2 0.5 0.5 0.2 0.2\n" });
    expect(thrownDataError(() => openYoloDataset(root)).message).toMatch(
      /a\.txt, line 3: class "2" is not a class index 0\.\.1/,
    );
    const float = yoloSet({ a: "1.0 0.5 0.5 0.2 0.2\n" });
    expect(openYoloDataset(float).images[0]!.objects[0]!.cls).toBe(1);
    const frac = yoloSet({ a: "0.5 0.5 0.5 0.2 0.2\n" });
    expect(thrownDataError(() => openYoloDataset(frac)).message).toMatch(/line 1: class "0\.5"/);
    const neg = yoloSet({ a: "-1 0.5 0.5 0.2 0.2\n" });
    expect(thrownDataError(() => openYoloDataset(neg)).message).toMatch(/line 1: class "-1"/);
  });

  it("reports malformed lines with file and line", () => {
    const short = yoloSet({ a: "0 0.5 0.5 0.2\n" });
    expect(thrownDataError(() => openYoloDataset(short)).message).toMatch(
      /a\.txt, line 1: 4 fields; expected 5/,
    );
    const word = yoloSet({ a: "1 0.5 0.5 0.2 0.2\n0 0.5 abc 0.2 0.2\n" });
    expect(thrownDataError(() => openYoloDataset(word)).message).toMatch(/line 2: cy "abc" is not a number/);
    const poly = yoloSet({ a: "0 0.1 0.1 0.5 0.1 0.5 0.5\n" });
    expect(thrownDataError(() => openYoloDataset(poly)).message).toMatch(
      /segmentation polygons are not supported/,
    );
    const flat = yoloSet({ a: "0 0.5 0.5 0 0.2\n" });
    expect(thrownDataError(() => openYoloDataset(flat)).message).toMatch(/line 1: box has width 0/);
  });

  it("reports label files without an image (the counts disagree)", () => {
    const root = yoloSet({ a: "0 0.5 0.5 0.2 0.2\n" });
    writeFileSync(join(root, "labels", "train", "ghost.txt"), "0 0.5 0.5 0.2 0.2\n");
    const e = thrownDataError(() => openYoloDataset(root));
    expect(e.message).toMatch(/ghost\.txt: 1 label file\(s\) in .* have no image in .*: ghost\.txt/);
  });

  it("reports a corrupt image by its path, at open (header) or when decoded", () => {
    const root = yoloSet({ a: null, b: null });
    writeFileSync(join(root, "images", "train", "a.png"), "not an image at all");
    expect(thrownDataError(() => openYoloDataset(root)).message).toMatch(/a\.png: unreadable image/);
    const trunc = yoloSet({ a: null });
    const bytes = png(40, 20);
    writeFileSync(join(trunc, "images", "train", "a.png"), bytes.subarray(0, 40)); // header intact, pixels gone
    const set = openYoloDataset(trunc);
    expect(thrownDataError(() => verifyImages(set)).message).toMatch(/a\.png: unreadable image .*damaged/);
  });

  it("says what is missing from the yaml", () => {
    const root = yoloSet({}, "names: [a]\ntrain: images/train\n");
    expect(thrownDataError(() => openYoloDataset(root, "val")).message).toMatch(/no `val:` entry/);
    const gone = yoloSet({}, "names: [a]\ntrain: images/nowhere\n");
    expect(thrownDataError(() => openYoloDataset(gone, "train")).message).toMatch(
      /images\/nowhere does not exist/,
    );
  });
});

describe("COCO JSON", () => {
  const doc = {
    images: [
      { id: 7, file_name: "x.png", width: 40, height: 20 },
      { id: 9, file_name: "y.png", width: 40, height: 20 },
    ],
    categories: [
      { id: 18, name: "dog" },
      { id: 1, name: "person" },
    ],
    annotations: [
      { id: 1, image_id: 7, category_id: 18, bbox: [10, 5, 20, 10] },
      { id: 2, image_id: 7, category_id: 1, bbox: [0, 0, 5, 5] },
      { id: 3, image_id: 9, category_id: 1, bbox: [0, 0, 40, 20], iscrowd: 1 },
    ],
  };

  it("numbers classes in category-id order and keeps boxes in pixels", () => {
    const set = parseCoco(JSON.stringify(doc), "a.json", "/imgs");
    expect(set.classNames).toEqual(["person", "dog"]);
    expect(set.categoryIds).toEqual([1, 18]);
    expect(set.images[0]).toMatchObject({ file: join("/imgs", "x.png"), width: 40, height: 20 });
    expect(set.images[0]!.objects).toEqual([
      { cls: 1, box: { x1: 10, y1: 5, x2: 30, y2: 15 } },
      { cls: 0, box: { x1: 0, y1: 0, x2: 5, y2: 5 } },
    ]);
    expect(set.images[1]!.objects).toEqual([]); // the crowd box is left out
  });

  it("names the annotation that is wrong", () => {
    const bad = (patch: object) =>
      thrownDataError(() =>
        parseCoco(JSON.stringify({ ...doc, annotations: [doc.annotations[0], patch] }), "a.json", "/"),
      ).message;
    expect(bad({ id: 5, image_id: 8, category_id: 1, bbox: [0, 0, 1, 1] })).toMatch(
      /annotations\[1\] \(id 5\): image_id 8 is not in "images"/,
    );
    expect(bad({ id: 5, image_id: 7, category_id: 2, bbox: [0, 0, 1, 1] })).toMatch(
      /category_id 2 is not in "categories"/,
    );
    expect(bad({ id: 5, image_id: 7, category_id: 1, bbox: [30, 0, 20, 5] })).toMatch(
      /bbox \[30, 0, 20, 5\] reaches outside its 40×20 image/,
    );
    expect(bad({ id: 5, image_id: 7, category_id: 1, bbox: [0, 0, 5] })).toMatch(
      /bbox must be \[x, y, width, height\]/,
    );
  });

  it("gives the line of broken JSON, and reads files", () => {
    expect(thrownDataError(() => parseCoco('{\n  "images": [],\n}', "a.json", "/")).message).toMatch(
      /^a\.json, line 3: not valid JSON/,
    );
    const dir = mkdtempSync(join(tmpdir(), "qat-coco-"));
    dirs.push(dir);
    writeFileSync(join(dir, "ann.json"), JSON.stringify(doc));
    writeFileSync(join(dir, "x.png"), png(40, 20));
    const set = openCocoDataset(join(dir, "ann.json"));
    expect(loadImage(set.images[0]!).height).toBe(20);
    expect(thrownDataError(() => loadImage(set.images[1]!)).message).toMatch(
      /y\.png: cannot read image \(ENOENT\)/,
    );
  });
});
