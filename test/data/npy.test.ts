import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Dataset } from "../../src/data/dataset.js";
import { DataError } from "../../src/data/errors.js";
import { parseNpy, readNpyPair } from "../../src/data/npy.js";
import { npyBytes, tempDir, thrownDataError } from "./fixtures.js";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function pair(x: Uint8Array, y: Uint8Array): { x: string; y: string } {
  const t = tempDir();
  cleanup.push(t.done);
  const paths = { x: join(t.dir, "x.npy"), y: join(t.dir, "y.npy") };
  writeFileSync(paths.x, x);
  writeFileSync(paths.y, y);
  return paths;
}

function all(ds: Dataset) {
  const n = ds.inputShape.reduce((a, b) => a * b, 1);
  const idx = Array.from({ length: ds.length }, (_, i) => i);
  const x = new Float32Array(ds.length * n);
  const y = new BigInt64Array(ds.length);
  ds.fill(idx, x, y);
  return { x: [...x], y: [...y].map(Number) };
}

describe("NPY", () => {
  it("decodes every supported dtype in both byte orders and format versions 1 and 2", () => {
    const vals = [0, 1, 2, 100];
    for (const descr of [
      "|u1",
      "|i1",
      "<u2",
      ">u2",
      "<i2",
      ">i2",
      "<u4",
      ">i4",
      "<i8",
      ">u8",
      "<f4",
      ">f4",
      "<f8",
      ">f8",
    ]) {
      for (const version of [1, 2] as const) {
        const a = parseNpy(npyBytes(descr, [2, 2], vals, { version }), "t.npy");
        expect(a.shape).toEqual([2, 2]);
        expect(a.dtype).toBe(descr.slice(1));
        expect([...a.data]).toEqual(vals);
      }
    }
    const neg = parseNpy(npyBytes(">i8", [3], [-5, 9007199254740991, -1]), "t.npy");
    expect([...neg.data]).toEqual([-5, 9007199254740991, -1]);
    // float16 bits: 1.0 = 0x3c00, -2.5 = 0xc100, 65504 = 0x7bff, smallest subnormal = 0x0001
    const half = parseNpy(npyBytes("<f2", [4], [0x3c00, 0xc100, 0x7bff, 0x0001]), "t.npy");
    expect([...half.data]).toEqual([1, -2.5, 65504, Math.fround(2 ** -24)]);
    expect([...parseNpy(npyBytes("|b1", [3], [1, 0, 1]), "t.npy").data]).toEqual([1, 0, 1]);
  });

  it("rejects Fortran order, object and structured arrays, and truncation, saying where", () => {
    expect(
      thrownDataError(() => parseNpy(npyBytes("<f4", [2, 2], [1, 2, 3, 4], { fortran: true }), "f.npy"))
        .message,
    ).toMatch(/f\.npy, byte 10: array is in Fortran.*ascontiguousarray/);
    const edit = (from: string, to: string) =>
      Buffer.from(
        Buffer.from(npyBytes("|u1", [1], [0]))
          .toString("latin1")
          .replace(from, to),
        "latin1",
      );
    expect(thrownDataError(() => parseNpy(edit("'|u1'", "'|O8'"), "o.npy")).message).toMatch(
      /object arrays cannot be read/,
    );
    expect(thrownDataError(() => parseNpy(edit("'|u1'", "[('a', '<i4')]"), "r.npy")).message).toMatch(
      /structured/,
    );
    expect(thrownDataError(() => parseNpy(edit("'|u1'", "'<U8'"), "u.npy")).message).toMatch(
      /dtype U8 is not supported/,
    );
    const full = npyBytes("<f4", [10], new Array(10).fill(1));
    const cut = thrownDataError(() => parseNpy(full.subarray(0, full.length - 3), "c.npy"));
    expect(cut.where.offset).toBe(full.length - 3);
    expect(cut.message).toMatch(
      /truncated NPY data: shape \(10\) of f4 needs 40 bytes after the header, the file has 37/,
    );
    expect(thrownDataError(() => parseNpy(new Uint8Array(20), "z.npy")).message).toMatch(/not an NPY file/);
  });

  it("builds datasets from (N,F), (N,H,W), NCHW and NHWC arrays with integer or one-hot labels", () => {
    const flat = readNpyPair(pair(npyBytes("<f8", [2, 3], [1, 2, 3, 4, 5, 6]), npyBytes("<i8", [2], [1, 0])));
    expect(flat.inputShape).toEqual([3]);
    expect(flat.numClasses).toBe(2);
    expect(all(flat)).toEqual({ x: [1, 2, 3, 4, 5, 6], y: [1, 0] });

    const gray = readNpyPair(pair(npyBytes("|u1", [1, 2, 2], [9, 8, 7, 6]), npyBytes("<i4", [1, 1], [0])));
    expect(gray.inputShape).toEqual([1, 2, 2]);
    expect(gray.data).toBeInstanceOf(Uint8Array);

    // one image 2×2 with 3 channels, channels last: pixel p, channel c = 10p + c
    const hwc = [0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32];
    const nhwc = readNpyPair(pair(npyBytes("|u1", [1, 2, 2, 3], hwc), npyBytes("<f4", [1, 3], [0, 0, 1])));
    expect(nhwc.inputShape).toEqual([3, 2, 2]);
    expect(all(nhwc)).toEqual({ x: [0, 10, 20, 30, 1, 11, 21, 31, 2, 12, 22, 32], y: [2] });
    const nchw = readNpyPair(pair(npyBytes("|u1", [1, 3, 2, 2], hwc), npyBytes("|u1", [1], [0])));
    expect(nchw.inputShape).toEqual([3, 2, 2]);
    expect(all(nchw).x).toEqual(hwc);
  });

  it("reports labels out of range (with byte offset), fractional labels, and count mismatches", () => {
    const p = pair(npyBytes("<f4", [3, 1], [0, 0, 0]), npyBytes("<i8", [3], [0, 1, 5]));
    const e = thrownDataError(() => readNpyPair({ ...p, numClasses: 3 }));
    expect(e.where).toMatchObject({ file: p.y, item: 2, offset: 128 + 16 });
    expect(e.message).toMatch(/label 5 of item 2 is outside 0\.\.2/);
    expect(
      thrownDataError(() => readNpyPair(pair(npyBytes("<f4", [1, 1], [0]), npyBytes("<f4", [1], [0.5]))))
        .message,
    ).toMatch(/label 0\.5 is not a class index/);
    expect(
      thrownDataError(() =>
        readNpyPair(pair(npyBytes("<f4", [2, 1], [0, 0]), npyBytes("<i4", [3], [0, 0, 0]))),
      ).message,
    ).toMatch(/y has 3 items but x has 2/);
  });
});
