import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openCifarFolder, readCifar10, readCifar100 } from "../../src/data/cifar.js";
import { DataError } from "../../src/data/errors.js";
import { cifarBytes, tempDir } from "./fixtures.js";

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

function folder(files: Record<string, Uint8Array | string>): string {
  const t = tempDir();
  cleanup.push(t.done);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(t.dir, name), data);
  return t.dir;
}

function sample(ds: ReturnType<typeof readCifar10>, i: number) {
  const x = new Float32Array(3072);
  const y = new BigInt64Array(1);
  ds.fill([i], x, y);
  return { x, y: Number(y[0]) };
}

describe("CIFAR binary batches", () => {
  it("concatenates CIFAR-10 batch files in order, with labels and CHW pixels as stored", () => {
    const dir = folder({
      "data_batch_1.bin": cifarBytes([[3], [9]]),
      "data_batch_2.bin": cifarBytes([[0]]),
    });
    const ds = readCifar10([join(dir, "data_batch_1.bin"), join(dir, "data_batch_2.bin")]);
    expect(ds.inputShape).toEqual([3, 32, 32]);
    expect(ds.length).toBe(3);
    expect(ds.numClasses).toBe(10);
    expect(ds.classNames?.[3]).toBe("cat");
    const s1 = sample(ds, 1);
    expect(s1.y).toBe(9);
    // item 1 of its file: pixel j = (7 + j) & 255; j = 1024 is the first green value
    expect([s1.x[0], s1.x[1], s1.x[1024], s1.x[3071]]).toEqual([7, 8, (7 + 1024) & 255, (7 + 3071) & 255]);
    const s2 = sample(ds, 2);
    expect([s2.y, s2.x[0], s2.x[5]]).toEqual([0, 0, 5]);
  });

  it("reads CIFAR-100 with fine or coarse labels", () => {
    const dir = folder({
      "train.bin": cifarBytes([
        [4, 77],
        [19, 3],
      ]),
    });
    const fine = readCifar100([join(dir, "train.bin")]);
    const coarse = readCifar100([join(dir, "train.bin")], { labels: "coarse" });
    expect([fine.numClasses, coarse.numClasses]).toEqual([100, 20]);
    expect([...fine.labels]).toEqual([77, 3]);
    expect([...coarse.labels]).toEqual([4, 19]);
    expect(sample(fine, 1).x[0]).toBe(7);
  });

  it("finds the split in a folder and takes class names from batches.meta.txt", () => {
    const names = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"];
    const files: Record<string, Uint8Array | string> = { "batches.meta.txt": `${names.join("\n")}\n\n` };
    for (let b = 1; b <= 5; b++) files[`data_batch_${b}.bin`] = cifarBytes([[b]]);
    files["test_batch.bin"] = cifarBytes([[7], [8]]);
    const dir = folder(files);
    const train = openCifarFolder(dir, "train");
    expect([...train.labels]).toEqual([1, 2, 3, 4, 5]);
    expect(train.classNames).toEqual(names);
    expect(openCifarFolder(dir, "test").length).toBe(2);

    const c100 = folder({ "test.bin": cifarBytes([[1, 2]]), "coarse_label_names.txt": "x\n".repeat(20) });
    const t = openCifarFolder(c100, "test", { labels: "coarse" });
    expect([t.numClasses, t.labels[0], t.classNames?.length]).toEqual([20, 1, 20]);
    expect(() => openCifarFolder(c100, "train")).toThrow(/no CIFAR train files here \(found test\.bin\)/);
  });

  it("reports a truncated file with the byte offset of the cut record, and labels out of range", () => {
    const good = cifarBytes([[1], [2], [3]]);
    const dir = folder({ "cut.bin": good.subarray(0, 3073 * 2 + 100), "bad.bin": cifarBytes([[1], [12]]) });
    try {
      readCifar10([join(dir, "cut.bin")]);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(DataError);
      expect((e as DataError).where.offset).toBe(6146);
      expect((e as Error).message).toMatch(
        /cut\.bin, byte 6146: 6246 bytes is not a whole number of 3073-byte records/,
      );
    }
    expect(() => readCifar10([join(dir, "bad.bin")])).toThrow(
      /bad\.bin, byte 3073, item 1: label 12 of item 1 is outside 0\.\.9/,
    );
    // a CIFAR-10 file read as CIFAR-100 fails the record-size check
    expect(() => readCifar100([join(dir, "bad.bin")])).toThrow(/3074-byte records/);
  });
});
