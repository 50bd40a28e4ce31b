import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encode as encodePng } from "fast-png";
import { zipSync } from "fflate";
import { afterEach, describe, expect, it } from "vitest";
import { openDataset } from "../../src/data/open.js";
import { cifarBytes, idxBytes, npyBytes, tempDir } from "./fixtures.js";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

describe("openDataset picks the format from the argument", () => {
  it("opens CSV, NPZ, NPY pairs, CIFAR files and folders, IDX folders and image folders", async () => {
    const t = tempDir();
    cleanup.push(t.done);
    const p = (f: string) => join(t.dir, f);
    writeFileSync(p("a.csv"), "f1,f2,y\n1,2,0\n3,4,1\n");
    writeFileSync(p("a.tsv"), "1\t2\t0\n");
    writeFileSync(
      p("a.npz"),
      zipSync({ "x.npy": npyBytes("<f4", [1, 2], [1, 2]), "y.npy": npyBytes("<i8", [1], [0]) }),
    );
    writeFileSync(p("x.npy"), npyBytes("<f4", [1, 3], [1, 2, 3]));
    writeFileSync(p("y.npy"), npyBytes("<i8", [1], [0]));
    writeFileSync(p("one.bin"), cifarBytes([[3]]));
    mkdirSync(p("c10"));
    writeFileSync(p("c10/test_batch.bin"), cifarBytes([[1], [2]]));
    mkdirSync(p("idx"));
    writeFileSync(p("idx/t10k-images-idx3-ubyte"), idxBytes([1, 2, 2], [0, 1, 2, 3]));
    writeFileSync(p("idx/t10k-labels-idx1-ubyte"), idxBytes([1], [0]));
    mkdirSync(p("img/cat"), { recursive: true });
    writeFileSync(
      p("img/cat/a.png"),
      encodePng({ width: 2, height: 2, data: new Uint8Array(4), channels: 1 }),
    );

    const shape = async (spec: string, o = {}) => {
      const ds = await openDataset(spec, o);
      return [ds.length, ...ds.inputShape];
    };
    expect(await shape(p("a.csv"))).toEqual([2, 2]);
    expect(await shape(p("a.tsv"))).toEqual([1, 2]);
    expect(await shape(p("a.npz"))).toEqual([1, 2]);
    expect(await shape(p("x.npy"), { labels: p("y.npy") })).toEqual([1, 3]);
    expect(await shape(p("one.bin"))).toEqual([1, 3, 32, 32]);
    expect(await shape(p("c10"), { split: "test" })).toEqual([2, 3, 32, 32]);
    expect(await shape(p("idx"), { split: "test" })).toEqual([1, 1, 2, 2]);
    expect(await shape(p("img"))).toEqual([1, 1, 2, 2]);
    await expect(openDataset(p("x.npy"))).rejects.toThrow(/give the labels file too/);
    await expect(openDataset(p("nope.parquet"))).rejects.toThrow(
      /nope\.parquet: no such file or folder, and not a named dataset/,
    );
    writeFileSync(p("a.parquet"), "x");
    await expect(openDataset(p("a.parquet"))).rejects.toThrow(/unknown data format/);
  });
});
