import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ArrayDataset, checkLabels } from "./dataset.js";
import { DataError } from "./errors.js";
import { readInput } from "./files.js";

const PIXELS = 3 * 32 * 32;

export const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
] as const;

/** The files of the CIFAR-10 binary version (`cifar-10-batches-bin/`). */
export const CIFAR10_FILES = {
  train: ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
  test: ["test_batch.bin"],
} as const;

/** The files of the CIFAR-100 binary version (`cifar-100-binary/`). */
export const CIFAR100_FILES = { train: ["train.bin"], test: ["test.bin"] } as const;

export interface CifarOptions {
  name?: string;
  classNames?: readonly string[];
}

/**
 * CIFAR-10 binary batches: records of 1 label byte + 3072 pixel bytes (the R, G, B planes of a 32×32 image, row
 * major), so a record is already [3, 32, 32]. Several batch files are concatenated in the order given.
 */
export function readCifar10(files: readonly string[], opts: CifarOptions = {}): ArrayDataset {
  return readCifar(files, 1, 0, 10, opts.classNames ?? CIFAR10_CLASSES, opts.name ?? "cifar10");
}

export interface Cifar100Options extends CifarOptions {
  /** Which label to train on: the 100 fine classes (default) or the 20 superclasses. */
  labels?: "fine" | "coarse";
}

/** CIFAR-100 binary files: records of 1 coarse label byte, 1 fine label byte, 3072 pixel bytes. */
export function readCifar100(files: readonly string[], opts: Cifar100Options = {}): ArrayDataset {
  const coarse = opts.labels === "coarse";
  return readCifar(files, 2, coarse ? 0 : 1, coarse ? 20 : 100, opts.classNames, opts.name ?? "cifar100");
}

function readCifar(
  files: readonly string[],
  labelBytes: number,
  labelAt: number,
  numClasses: number,
  classNames: readonly string[] | undefined,
  name: string,
): ArrayDataset {
  const rec = labelBytes + PIXELS;
  const parts = files.map((f) => {
    const bytes = readInput(f, "CIFAR binary batch");
    const whole = Math.floor(bytes.length / rec);
    if (bytes.length % rec !== 0 || bytes.length === 0) {
      throw new DataError(
        `${bytes.length} bytes is not a whole number of ${rec}-byte records ` +
          `(${labelBytes === 1 ? "CIFAR-10: 1 label byte" : "CIFAR-100: 2 label bytes"} + 3072 pixels): ` +
          `record ${whole} is cut short; the file is truncated or of the other CIFAR version, download it again`,
        { file: f, offset: whole * rec },
      );
    }
    return { file: f, bytes, count: whole };
  });
  const n = parts.reduce((a, p) => a + p.count, 0);
  const data = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let i = 0;
  for (const p of parts) {
    const first = i;
    for (let r = 0; r < p.count; r++, i++) {
      labels[i] = p.bytes[r * rec + labelAt]!;
      data.set(p.bytes.subarray(r * rec + labelBytes, (r + 1) * rec), i * PIXELS);
    }
    checkLabels(labels.subarray(first, i), numClasses, (r) => ({
      file: p.file,
      offset: r * rec + labelAt,
      item: r,
    }));
  }
  return new ArrayDataset({
    name,
    inputShape: [3, 32, 32],
    numClasses,
    data,
    labels,
    ...(classNames ? { classNames } : {}),
  });
}

/**
 * Open the train or test split of a folder holding the CIFAR-10 (`data_batch_*.bin`, `test_batch.bin`) or
 * CIFAR-100 (`train.bin`, `test.bin`) binary files. Class names come from `batches.meta.txt` /
 * `fine_label_names.txt` / `coarse_label_names.txt` when present.
 */
export function openCifarFolder(
  dir: string,
  split: "train" | "test",
  opts: Cifar100Options = {},
): ArrayDataset {
  const has = (f: string) => existsSync(join(dir, f));
  if (CIFAR10_FILES[split].every(has)) {
    const names = readNames(join(dir, "batches.meta.txt"), 10) ?? CIFAR10_CLASSES;
    return readCifar10(
      CIFAR10_FILES[split].map((f) => join(dir, f)),
      { name: opts.name ?? `cifar10-${split}`, classNames: opts.classNames ?? names },
    );
  }
  if (CIFAR100_FILES[split].every(has)) {
    const coarse = opts.labels === "coarse";
    const names = readNames(
      join(dir, coarse ? "coarse_label_names.txt" : "fine_label_names.txt"),
      coarse ? 20 : 100,
    );
    return readCifar100(
      CIFAR100_FILES[split].map((f) => join(dir, f)),
      {
        ...opts,
        name: opts.name ?? `cifar100-${split}`,
        ...(names || opts.classNames ? { classNames: opts.classNames ?? names } : {}),
      },
    );
  }
  let present: string[] = [];
  try {
    present = readdirSync(dir).filter((f) => f.endsWith(".bin"));
  } catch {
    // reported below
  }
  throw new DataError(
    `no CIFAR ${split} files here (found ${present.length ? present.join(", ") : "no .bin files"}); ` +
      `CIFAR-10 needs ${CIFAR10_FILES[split].join(", ")}; CIFAR-100 needs ${CIFAR100_FILES[split].join(", ")}`,
    { file: dir },
  );
}

function readNames(path: string, n: number): string[] | undefined {
  if (!existsSync(path)) return undefined;
  const names = readFileSync(path, "utf8")
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return names.length === n ? names : undefined;
}
