import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.js";
import { readIdxDataset } from "../../src/data/idx-dataset.js";
import { idxBytes, tempDir } from "./fixtures.js";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function files(images: Uint8Array, labels: Uint8Array, gz = false): { images: string; labels: string } {
  const t = tempDir();
  cleanup.push(t.done);
  const p = { images: join(t.dir, "img.idx"), labels: join(t.dir, "lab.idx") };
  writeFileSync(p.images, gz ? gzipSync(images) : images);
  writeFileSync(p.labels, gz ? gzipSync(labels) : labels);
  return p;
}

describe("IDX datasets", () => {
  it("reads N×H×W images (raw or gzip) as [1,H,W] and N×H×W×C as [C,H,W]", () => {
    const px = Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 3);
    for (const gz of [false, true]) {
      const ds = readIdxDataset({
        ...files(idxBytes([3, 2, 2], px), idxBytes([3], [2, 0, 1]), gz),
        numClasses: 4,
      });
      expect([ds.length, ds.numClasses, ...ds.inputShape]).toEqual([3, 4, 1, 2, 2]);
      const x = new Float32Array(4);
      const y = new BigInt64Array(1);
      ds.fill([2], x, y);
      expect([...x, Number(y[0])]).toEqual([24, 27, 30, 33, 1]);
    }
    const hwc = readIdxDataset(files(idxBytes([1, 1, 2, 3], [1, 2, 3, 4, 5, 6]), idxBytes([1], [0])));
    expect(hwc.inputShape).toEqual([3, 1, 2]);
    expect([...hwc.data]).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it("reports truncated files, label/image count mismatches and labels out of range, with file and place", () => {
    const img = idxBytes([3, 2, 2], new Array(12).fill(0));
    const cut = files(img.subarray(0, img.length - 5), idxBytes([3], [0, 1, 2]));
    const e = (() => {
      try {
        readIdxDataset(cut);
      } catch (err) {
        return err as DataError;
      }
      throw new Error("expected an error");
    })();
    expect(e).toBeInstanceOf(DataError);
    expect(e.message).toContain(`${cut.images}, byte 23: truncated IDX data`);
    expect(() => readIdxDataset(files(img, idxBytes([2], [0, 1])))).toThrow(/2 labels for 3 images/);
    const p = files(img, idxBytes([3], [0, 1, 10]));
    expect(() => readIdxDataset({ ...p, classNames: ["a", "b", "c"] })).toThrow(
      `${p.labels}, byte 10, item 2: label 10 of item 2 is outside 0..2 (3 classes)`,
    );
  });
});
