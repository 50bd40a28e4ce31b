import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Command } from "commander";
import { afterAll, describe, expect, it, vi } from "vitest";
import { boxArea, intersectionArea, iou } from "../../src/detect/boxes.js";
import { loadImage } from "../../src/detect/dataset.js";
import { type DigitSource, generateMnistDetect, inkBox, renderScene } from "../../src/detect/mnist-detect.js";
import { openYoloDataset } from "../../src/detect/yolo.js";
import { Rng } from "../../src/util/rng.js";
import { dataCommand } from "../../toolchain/commands/data.js";
import { exitCodeFor } from "../../toolchain/output.js";
import { DATA } from "../helpers/paths.js";

const MNIST = join(DATA, "mnist");
const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "qat-mnist-detect-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function files(root: string, dir = root): string[] {
  return readdirSync(dir)
    .flatMap((n) =>
      statSync(join(dir, n)).isDirectory() ? files(root, join(dir, n)) : [relative(root, join(dir, n))],
    )
    .sort();
}

/** Ten synthetic "digits" 28×28: digit k is a filled block whose size depends on k. */
const fakeDigits: DigitSource = {
  count: 10,
  size: 28,
  pixels: (i) => {
    const px = new Uint8Array(28 * 28);
    for (let y = 4; y < 24; y++) for (let x = 8; x < 12 + i; x++) px[y * 28 + x] = 200;
    return px;
  },
  label: (i) => i,
};

describe("mnist-detect scenes", () => {
  it("places 1–5 digits of 12–48 px with tight boxes, light overlap, and clutter off the digits", () => {
    let clutterSeen = 0;
    for (let s = 0; s < 200; s++) {
      const { image, objects } = renderScene(fakeDigits, new Rng(s));
      expect(objects.length).toBeGreaterThanOrEqual(1);
      expect(objects.length).toBeLessThanOrEqual(5);
      const inBoxes = new Uint8Array(96 * 96);
      for (const [k, o] of objects.entries()) {
        const { x1, y1, x2, y2 } = o.box;
        expect(Math.max(x2 - x1, y2 - y1)).toBeGreaterThanOrEqual(12);
        expect(Math.max(x2 - x1, y2 - y1)).toBeLessThanOrEqual(48);
        expect(x1 >= 0 && y1 >= 0 && x2 <= 96 && y2 <= 96).toBe(true);
        // tight: ink on each edge row/column of the box
        const sub = new Uint8Array((x2 - x1) * (y2 - y1));
        for (let y = y1; y < y2; y++)
          for (let x = x1; x < x2; x++) sub[(y - y1) * (x2 - x1) + x - x1] = image.data[y * 96 + x]!;
        expect(inkBox(sub, x2 - x1, y2 - y1)).toEqual({ x1: 0, y1: 0, x2: x2 - x1, y2: y2 - y1 });
        for (const other of objects.slice(k + 1)) {
          expect(iou(o.box, other.box)).toBeLessThanOrEqual(0.3);
          expect(
            intersectionArea(o.box, other.box) / Math.min(boxArea(o.box), boxArea(other.box)),
          ).toBeLessThanOrEqual(0.5);
        }
        for (let y = Math.max(0, y1 - 1); y < Math.min(96, y2 + 1); y++)
          for (let x = Math.max(0, x1 - 1); x < Math.min(96, x2 + 1); x++) inBoxes[y * 96 + x] = 1;
      }
      // ink outside every digit box (with its 1 px margin) is clutter
      if (image.data.some((v, p) => v > 0 && !inBoxes[p])) clutterSeen++;
    }
    expect(clutterSeen).toBeGreaterThan(100);
  });
});

describe("mnist-detect set", () => {
  it("is byte-identical for the same seed and differs for another; reads back as written", async () => {
    const a = tmp();
    const b = tmp();
    const c = tmp();
    const opts = { train: 24, val: 6, dataDir: MNIST, download: false };
    const sa = await generateMnistDetect({ ...opts, out: a, seed: 5 });
    const sb = await generateMnistDetect({ ...opts, out: b, seed: 5 });
    await generateMnistDetect({ ...opts, out: c, seed: 6 });
    const list = files(a);
    expect(list).toHaveLength(2 * 30 + 1);
    expect(files(b)).toEqual(list);
    for (const f of list) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f)))).toBe(true);
    expect(sb).toEqual(sa);
    const differ = list.filter(
      (f) => f !== "data.yaml" && !readFileSync(join(c, f)).equals(readFileSync(join(a, f))),
    );
    expect(differ.length).toBeGreaterThan(50);

    expect(sa.splits.train!.images).toBe(24);
    expect(sa.splits.val!.images).toBe(6);
    const train = openYoloDataset(a, "train");
    expect(train.classNames).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    expect(train.images.reduce((n, im) => n + im.objects.length, 0)).toBe(sa.splits.train!.boxes);
    for (const im of train.images) {
      const img = loadImage(im);
      expect(img).toMatchObject({ width: 96, height: 96, channels: 1 });
      for (const o of im.objects) {
        // boxes survive the six-decimal label text to well under a pixel, and sit on ink
        for (const v of [o.box.x1, o.box.y1, o.box.x2, o.box.y2])
          expect(Math.abs(v - Math.round(v))).toBeLessThan(1e-3);
        const x = Math.round(o.box.x1);
        const row = Math.round(o.box.y1);
        let ink = false;
        for (let xx = x; xx < Math.round(o.box.x2); xx++) ink ||= img.data[row * 96 + xx]! > 0;
        expect(ink).toBe(true);
      }
    }
  });

  it("refuses a folder that is not empty unless told to overwrite", async () => {
    const out = tmp();
    writeFileSync(join(out, "keep.txt"), "mine");
    await expect(
      generateMnistDetect({ out, train: 1, val: 1, dataDir: MNIST, download: false }),
    ).rejects.toThrow(/not empty/);
    await generateMnistDetect({ out, train: 2, val: 1, dataDir: MNIST, download: false, overwrite: true });
    expect(files(out)).toContain("keep.txt");
    expect(files(out)).toContain(join("images", "train", "000001.png"));
  });
});

async function runData(args: string[]): Promise<{ stdout: string; error?: unknown }> {
  const writes: string[] = [];
  const out = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
    writes.push(String(s));
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  try {
    const p = new Command("qat").exitOverride().addCommand(dataCommand());
    await p.parseAsync(args, { from: "user" });
    return { stdout: writes.join("") };
  } catch (error) {
    return { stdout: writes.join(""), error };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe("qat data", () => {
  it("synth mnist-detect prints the summary as JSON, and summary reads the set back to the same figures", async () => {
    const out = tmp();
    const made = await runData([
      "data",
      "synth",
      "mnist-detect",
      "--out",
      out,
      "--train",
      "12",
      "--val",
      "3",
      "--seed",
      "1",
      "--data-dir",
      MNIST,
      "--json",
    ]);
    expect(made.error).toBeUndefined();
    const j = JSON.parse(made.stdout.trim().split("\n").pop()!);
    expect(j.seed).toBe(1);
    expect(j.splits.train.images).toBe(12);
    expect(j.splits.val.boxesPerImage.reduce((a: number, b: number) => a + b, 0)).toBe(3);
    const read = await runData(["data", "summary", out, "--verify", "--json"]);
    expect(read.error).toBeUndefined();
    const r = JSON.parse(read.stdout.trim().split("\n").pop()!);
    expect(r.splits.train.boxesPerImage).toEqual(j.splits.train.boxesPerImage);
    expect(r.splits.train.sizeHistogram).toEqual(j.splits.train.sizeHistogram);
    expect(r.splits.val.perClass).toEqual(j.splits.val.perClass);
  });

  it("exits 2 on bad flags and bad labels", async () => {
    const bad = await runData(["data", "synth", "mnist-detect", "--out", tmp(), "--train", "2x"]);
    expect(String(bad.error)).toMatch(/--train expects a whole number/);
    expect(exitCodeFor(bad.error)).toBe(2);
    const out = tmp();
    await runData([
      "data",
      "synth",
      "mnist-detect",
      "--out",
      out,
      "--train",
      "2",
      "--val",
      "1",
      "--data-dir",
      MNIST,
    ]);
    writeFileSync(join(out, "labels", "train", "000001.txt"), "3 0.5 0.5 0.1 0.1\n12 0.5 0.5 0.1 0.1\n");
    const broken = await runData(["data", "summary", join(out, "data.yaml")]);
    expect(String(broken.error)).toMatch(/000001\.txt, line 2: class "12" is not a class index 0\.\.9/);
    expect(exitCodeFor(broken.error)).toBe(2);
  });
});
