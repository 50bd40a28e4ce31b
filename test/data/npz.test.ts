import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { zipSync } from "fflate";
import { afterEach, describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.js";
import { listNpz, readNpz } from "../../src/data/npz.js";
import { npyBytes, tempDir } from "./fixtures.js";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function file(bytes: Uint8Array): string {
  const t = tempDir();
  cleanup.push(t.done);
  const p = join(t.dir, "d.npz");
  writeFileSync(p, bytes);
  return p;
}

const xs = Array.from({ length: 2 * 4 * 4 }, (_, i) => i);
const arrays = {
  "x.npy": npyBytes("|u1", [2, 4, 4], xs),
  "y.npy": npyBytes("<i8", [2], [1, 0]),
  "extra.npy": npyBytes("<f4", [1], [0]),
};

describe("NPZ", () => {
  it("reads x and y from stored and deflate-compressed archives", () => {
    for (const level of [0, 6] as const) {
      const p = file(zipSync(arrays, { level }));
      expect(listNpz(p).sort()).toEqual(["extra.npy", "x.npy", "y.npy"]);
      const ds = readNpz(p);
      expect(ds.inputShape).toEqual([1, 4, 4]);
      expect(ds.length).toBe(2);
      const x = new Float32Array(32);
      const y = new BigInt64Array(2);
      ds.fill([1, 0], x, y);
      expect([...x]).toEqual([...xs.slice(16), ...xs.slice(0, 16)]);
      expect([...y]).toEqual([0n, 1n]);
    }
  });

  it("takes other array names, and says which arrays exist when one is missing", () => {
    const p = file(zipSync({ "x_train.npy": arrays["x.npy"], "y_train.npy": arrays["y.npy"] }));
    expect(readNpz(p, { xKey: "x_train", yKey: "y_train" }).length).toBe(2);
    try {
      readNpz(p);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DataError);
      expect((e as Error).message).toMatch(
        /d\.npz: no array named "x" in the archive \(it holds: x_train, y_train\)/,
      );
    }
  });

  it("reports a damaged archive and errors inside a member by member name", () => {
    const good = zipSync(arrays, { level: 6 });
    expect(() => readNpz(file(good.subarray(0, good.length - 30)))).toThrow(
      /not a readable NPZ \(zip\) archive/,
    );
    const fortran = file(zipSync({ ...arrays, "x.npy": npyBytes("|u1", [2, 4, 4], xs, { fortran: true }) }));
    expect(() => readNpz(fortran)).toThrow(/d\.npz:x\.npy, byte 10: array is in Fortran/);
  });
});
