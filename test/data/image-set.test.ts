import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import { describe, expect, it } from "vitest";
import { openImageSet } from "../../src/data/image-set.js";
import { resample } from "../../src/data/resample.js";
import { DATA } from "../helpers/paths.js";
import { tempDirPerTest, thrownDataError } from "./fixtures.js";

const PHOTOS = join(DATA, "images");
const dir = tempDirPerTest();
const all = (n: number) => Array.from({ length: n }, (_, i) => i);

function fill(ds: ReturnType<typeof openImageSet>, idx: number[], epoch?: number) {
  const x = new Float32Array(idx.length * ds.inputShape.reduce((a, b) => a * b, 1));
  const y = new BigInt64Array(idx.length);
  ds.fill(idx, x, y, { epoch });
  return { x, y };
}

describe("resample", () => {
  const row = (v: number[]) => ({
    width: v.length,
    height: 1,
    channels: 1 as const,
    data: Uint8Array.from(v),
  });

  it("upscales 2→4 with half-pixel bilinear: 0, 25, 75, 100", () => {
    const { data } = resample(row([0, 100]), { x: 0, y: 0, width: 2, height: 1 }, 1, 4);
    expect([...data]).toEqual([0, 25, 75, 100]);
  });

  it("downscales 4→2 with the triangle widened ×2 (antialiased): (0·¾+80·¾+160·¼)/1¾ and its mirror", () => {
    const { data } = resample(row([0, 80, 160, 240]), { x: 0, y: 0, width: 4, height: 1 }, 1, 2);
    expect(data[0]).toBeCloseTo(100 / 1.75, 4);
    expect(data[1]).toBeCloseTo((80 * 0.25 + 160 * 0.75 + 240 * 0.75) / 1.75, 4);
  });

  it("letterboxes a 4×2 image into 4×4: image rows 1–2, pad rows 0 and 3, placement reported", () => {
    const img = { width: 4, height: 2, channels: 1 as const, data: new Uint8Array(8).fill(200) };
    const { data, placement } = resample(img, { x: 0, y: 0, width: 4, height: 2 }, 4, 4, {
      fit: "letterbox",
      padValue: 7,
    });
    expect([...data]).toEqual([7, 7, 7, 7, 200, 200, 200, 200, 200, 200, 200, 200, 7, 7, 7, 7]);
    expect(placement).toEqual({ scaleX: 1, scaleY: 1, padX: 0, padY: 1, width: 4, height: 2 });
  });

  it("mirrors when asked", () => {
    const { data } = resample(row([10, 20, 30]), { x: 0, y: 0, width: 3, height: 1 }, 1, 3, { flip: true });
    expect([...data]).toEqual([30, 20, 10]);
  });
});

describe("unlabelled image folders", () => {
  it("loads the 9 photos (PNG and JPEG, grey and colour) resized to 64×64, NCHW, label -1", () => {
    const ds = openImageSet(PHOTOS, { size: [64, 64] });
    expect(ds.files.length).toBe(9);
    expect(ds.length).toBe(9);
    expect(ds.inputShape).toEqual([3, 64, 64]);
    expect(ds.numClasses).toBe(0);
    const { x, y } = fill(ds, all(9));
    expect([...y]).toEqual(Array(9).fill(-1n));
    expect(Math.min(...x)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...x)).toBeLessThanOrEqual(255);
    // camera.png is a grey photo: its three RGB planes are identical
    const cam = ds.files.findIndex((f) => f.endsWith("camera.png"));
    const n = 64 * 64;
    const s = x.subarray(cam * 3 * n, (cam + 1) * 3 * n);
    expect(s.subarray(0, n)).toEqual(s.subarray(n, 2 * n));
  });

  it("NHWC holds the NCHW values transposed; one channel is the BT.601 luma of the colour values", () => {
    const chw = fill(openImageSet(PHOTOS, { size: [16, 24] }), [0, 3]).x;
    const hwc = fill(openImageSet(PHOTOS, { size: [16, 24], layout: "nhwc" }), [0, 3]).x;
    const grey = fill(openImageSet(PHOTOS, { size: [16, 24], channels: 1 }), [0, 3]).x;
    const n = 16 * 24;
    for (let s = 0; s < 2; s++)
      for (let p = 0; p < n; p += 37) {
        for (let c = 0; c < 3; c++) expect(hwc[s * 3 * n + p * 3 + c]).toBe(chw[s * 3 * n + c * n + p]);
        const [r, g, b] = [0, 1, 2].map((c) => chw[s * 3 * n + c * n + p]!);
        expect(grey[s * n + p]).toBeCloseTo(0.299 * r! + 0.587 * g! + 0.114 * b!, 3);
      }
  });

  it("letterboxes keeping the aspect ratio: a 2:1 photo gets pad rows top and bottom", () => {
    const d = dir();
    const w = 40;
    const h = 20;
    writeFileSync(
      join(d, "wide.png"),
      encodePng({ width: w, height: h, data: new Uint8Array(w * h).fill(255), channels: 1 }),
    );
    const { x } = fill(openImageSet(d, { size: [32, 32], fit: "letterbox", channels: 1, padValue: 0 }), [0]);
    expect(x[0]).toBe(0); // row 0: padding
    expect(x[8 * 32 + 16]).toBeCloseTo(255, 3); // row 8..23: the image
    expect(x[23 * 32 + 5]).toBeCloseTo(255, 3);
    expect(x[24 * 32 + 5]).toBe(0);
  });

  it("multiplies images by seeded random crops: same seed same samples, other seed or epoch others", () => {
    const crops = (seed: number) => openImageSet(PHOTOS, { size: [32, 32], crops: { perImage: 8, seed } });
    const a = crops(1);
    expect(a.length).toBe(72);
    const idx = [0, 1, 9, 71];
    const x1 = fill(a, idx).x;
    expect(fill(crops(1), idx).x).toEqual(x1);
    expect(fill(crops(2), idx).x).not.toEqual(x1);
    expect(fill(a, idx, 1).x).not.toEqual(x1);
    // crops of one image differ from each other, and lie inside the image
    const s0 = a.source(0);
    const s1 = a.source(1);
    expect(s0.file).toBe(s1.file);
    expect(s0.region).not.toEqual(s1.region);
    expect(a.source(8).file).not.toBe(s0.file);
    for (let i = 0; i < 72; i++) {
      const { region } = a.source(i);
      expect(region.x).toBeGreaterThanOrEqual(0);
      expect(region.width * region.height).toBeGreaterThan(0);
    }
  });

  it("reads a grey JPEG and a colour PNG side by side", () => {
    const d = dir();
    const g = jpeg.encode({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 4).fill(128) }, 95).data;
    writeFileSync(join(d, "a.jpg"), g);
    writeFileSync(
      join(d, "b.png"),
      encodePng({ width: 5, height: 3, data: new Uint8Array(45).fill(60), channels: 3 }),
    );
    const { x } = fill(openImageSet(d, { size: [4, 4], channels: 1 }), [0, 1]);
    expect(x[0]).toBeCloseTo(128, -1);
    expect(x[16]).toBeCloseTo(60, 3);
  });

  it("names the problem: empty folder, missing folder, corrupt image, bad size", () => {
    const d = dir();
    expect(thrownDataError(() => openImageSet(d, { size: [8, 8] })).message).toMatch(
      new RegExp(`${d}: the folder has no PNG or JPEG images`),
    );
    expect(thrownDataError(() => openImageSet(join(d, "nope"), { size: [8, 8] })).message).toMatch(
      /not found/,
    );
    writeFileSync(join(d, "bad.jpg"), Buffer.from("this is not a JPEG at all"));
    expect(thrownDataError(() => openImageSet(d, { size: [8, 8] })).message).toMatch(
      /bad\.jpg: unreadable image/,
    );
    // a PNG with a valid header and damaged pixel data is caught when decoded, naming the file
    const good = Buffer.from(
      encodePng({ width: 8, height: 8, data: new Uint8Array(64).fill(9), channels: 1 }),
    );
    const damaged = Buffer.concat([good.subarray(0, 45), Buffer.alloc(20, 0xaa), good.subarray(65)]);
    writeFileSync(join(d, "bad.jpg"), damaged);
    writeFileSync(join(d, "bad.png"), damaged);
    const ds = openImageSet(d, { size: [8, 8] });
    expect(thrownDataError(() => fill(ds, [0])).message).toMatch(/bad\.jpg: unreadable image/);
    expect(thrownDataError(() => openImageSet(d, { size: [0, 8] })).message).toMatch(/two positive integers/);
  });
});
