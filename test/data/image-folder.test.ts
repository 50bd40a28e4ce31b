import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { afterEach, describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.js";
import { openImageFolder } from "../../src/data/image-folder.js";
import { tempDir, thrownDataError } from "./fixtures.js";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

/** Write files (relative path → bytes) under a fresh folder. */
function tree(files: Record<string, Uint8Array>): string {
  const t = tempDir();
  cleanup.push(t.done);
  for (const [rel, bytes] of Object.entries(files)) {
    const p = join(t.dir, rel);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, bytes);
  }
  return t.dir;
}

const W = 3;
const H = 2;
const ramp = (ch: number, k: number) => Uint8Array.from({ length: W * H * ch }, (_, i) => (i * 10 + k) & 255);
const png = (data: Uint8Array | Uint16Array, channels: number, depth: 8 | 16 = 8, w = W, h = H) =>
  encodePng({ width: w, height: h, data, channels, depth });

function fillAll(ds: ReturnType<typeof openImageFolder>) {
  const n = ds.inputShape.reduce((a, b) => a * b, 1);
  const idx = Array.from({ length: ds.length }, (_, i) => i);
  const x = new Float32Array(n * ds.length);
  const y = new BigInt64Array(ds.length);
  ds.fill(idx, x, y);
  return { x, y: [...y].map(Number), n };
}

describe("image folders", () => {
  it("lists one class per sub-folder (sorted) and decodes grey PNGs as stored, lazily", () => {
    const root = tree({
      "dog/b.png": png(ramp(1, 1), 1),
      "dog/a.PNG": png(ramp(1, 2), 1),
      "cat/nested/c.png": png(ramp(1, 3), 1),
      "cat/notes.txt": new Uint8Array([1, 2, 3]),
    });
    const ds = openImageFolder(root);
    expect(ds.classNames).toEqual(["cat", "dog"]);
    expect(ds.inputShape).toEqual([1, H, W]);
    expect(ds.entries.map((e) => e.path.slice(root.length + 1))).toEqual([
      "cat/nested/c.png",
      "dog/a.PNG",
      "dog/b.png",
    ]);
    const { x, y } = fillAll(ds);
    expect(y).toEqual([0, 1, 1]);
    expect([...x.subarray(0, 6)]).toEqual([...ramp(1, 3)]);
    expect([...x.subarray(6, 12)]).toEqual([...ramp(1, 2)]);
    // decoding is lazy: a file removed after opening fails only when its batch is filled, naming the file
    rmSync(join(root, "dog/b.png"));
    const one = new Float32Array(6);
    ds.fill([0], one, new BigInt64Array(1));
    const e = thrownDataError(() => ds.fill([2], one, new BigInt64Array(1)));
    expect(e.where.file).toBe(join(root, "dog/b.png"));
    expect(e.message).toMatch(/cannot read the image \(ENOENT\)/);
  });

  it("turns RGB, RGBA, grey, 16-bit, palette and 1-bit PNGs into CHW values 0–255", () => {
    const rgb = ramp(3, 0);
    const rgba = Uint8Array.from({ length: W * H * 4 }, (_, i) => (i % 4 === 3 ? 17 : i));
    const grey16 = Uint16Array.from({ length: W * H }, (_, i) => i * 257 * 40);
    const palette = encodePng({
      width: W,
      height: H,
      depth: 8,
      channels: 1,
      data: Uint8Array.from([0, 1, 2, 2, 1, 0]),
      palette: [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
      ],
    });
    const bits = encodePng({
      width: 8,
      height: 1,
      depth: 1,
      channels: 1,
      data: Uint8Array.from([0b10110001]),
    });
    const root = tree({
      "a/rgb.png": png(rgb, 3),
      "a/rgba.png": png(rgba, 4),
      "b/grey.png": png(ramp(1, 5), 1),
      "b/grey16.png": png(grey16, 1, 16),
      "c/pal.png": palette,
    });
    const ds = openImageFolder(root);
    expect(ds.inputShape).toEqual([3, H, W]);
    const { x, n } = fillAll(ds);
    const plane = W * H;
    const chw = (hwc: ArrayLike<number>, c: number) =>
      Array.from({ length: 3 * plane }, (_, i) => hwc[(i % plane) * c + Math.floor(i / plane)]!);
    expect([...x.subarray(0, n)]).toEqual(chw(rgb, 3));
    expect([...x.subarray(n, 2 * n)]).toEqual(chw(rgba, 4));
    const g = [...ramp(1, 5)];
    expect([...x.subarray(2 * n, 3 * n)]).toEqual([...g, ...g, ...g]);
    const g16 = [...grey16].map((v) => v / 257);
    expect([...x.subarray(3 * n, 4 * n)]).toEqual([...g16, ...g16, ...g16]);
    expect([...x.subarray(4 * n, 5 * n)]).toEqual([
      255, 0, 0, 0, 0, 255, 0, 255, 0, 0, 255, 0, 0, 0, 255, 255, 0, 0,
    ]);

    const one = fillAll(openImageFolder(tree({ "x/bits.png": bits })));
    expect([...one.x]).toEqual([255, 0, 255, 255, 0, 0, 0, 255]);
  });

  it("decodes JPEGs, and converts colour to grey when asked for one channel", () => {
    const rgba = Uint8Array.from({ length: 16 * 16 * 4 }, (_, i) =>
      i % 4 === 3 ? 255 : i % 4 === 0 ? 200 : 60,
    );
    const jpg = jpeg.encode({ width: 16, height: 16, data: rgba }, 100).data;
    const root = tree({ "a/p.jpg": jpg, "b/q.jpeg": jpg, "b/r.png": png(rgba, 4, 8, 16, 16) });
    const ds = openImageFolder(root);
    expect(ds.inputShape).toEqual([3, 16, 16]);
    const { x, n } = fillAll(ds);
    for (let i = 0; i < 2 * n; i++) {
      const want = i % n < 256 ? 200 : 60;
      expect(Math.abs(x[i]! - want)).toBeLessThanOrEqual(3);
    }
    const grey = openImageFolder(root, { channels: 1 });
    expect(grey.inputShape).toEqual([1, 16, 16]);
    const g = fillAll(grey);
    expect(g.x[2 * 256]).toBe(Math.round(0.299 * 200 + 0.587 * 60 + 0.114 * 60));
  });

  it("reports images of another size with their paths and sizes", () => {
    const root = tree({
      "a/one.png": png(ramp(1, 0), 1),
      "a/two.png": png(new Uint8Array(4 * 2), 1, 8, 4, 2),
      "b/three.png": png(new Uint8Array(3 * 5), 1, 8, 3, 5),
    });
    const e = thrownDataError(() => openImageFolder(root));
    expect(e.where.file).toBe(join(root, "a/two.png"));
    expect(e.message).toMatch(
      /images must all have one size: a\/one\.png is 3×2 \(width×height\), but a\/two\.png is 4×2; b\/three\.png is 3×5/,
    );
  });

  it("reports unreadable images: not an image at all, and a damaged PNG when its batch is decoded", () => {
    const garbage = tree({
      "a/ok.png": png(ramp(1, 0), 1),
      "a/bad.png": new TextEncoder().encode("hello there"),
    });
    const e = thrownDataError(() => openImageFolder(garbage));
    expect(e.where.file).toBe(join(garbage, "a/bad.png"));
    expect(e.message).toMatch(/unreadable image: neither PNG nor JPEG/);

    const good = png(ramp(1, 0), 1);
    const root = tree({ "a/ok.png": good, "a/cut.png": good.subarray(0, 40) });
    const ds = openImageFolder(root);
    const d = thrownDataError(() => fillAll(ds));
    expect(d.where.file).toBe(join(root, "a/cut.png"));
    expect(d.message).toMatch(/unreadable image \(.*\); the file is damaged/);
  });

  it("reports a missing folder, no class folders and an empty class", () => {
    expect(thrownDataError(() => openImageFolder("/nonexistent/imgs")).message).toMatch(
      /image folder not found/,
    );
    expect(thrownDataError(() => openImageFolder(tree({ "x.png": png(ramp(1, 0), 1) }))).message).toMatch(
      /no class folders/,
    );
    const root = tree({ "a/x.png": png(ramp(1, 0), 1), "b/readme.txt": new Uint8Array(1) });
    expect(thrownDataError(() => openImageFolder(root)).where.file).toBe(join(root, "b"));
  });

  it("estimates channel statistics from the images", () => {
    const root = tree({
      "a/x.png": png(new Uint8Array(6).fill(10), 1),
      "b/y.png": png(new Uint8Array(6).fill(30), 1),
    });
    expect(openImageFolder(root).stats()).toEqual({ mean: [20], std: [10] });
  });
});
