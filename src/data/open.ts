import { existsSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { openCifarFolder, readCifar10 } from "./cifar.js";
import { type CsvOptions, readCsv } from "./csv.js";
import type { Dataset } from "./dataset.js";
import { DataError } from "./errors.js";
import { readIdxDataset } from "./idx-dataset.js";
import { openImageFolder } from "./image-folder.js";
import { type NamedDatasetOptions, openNamedDataset, type Split } from "./named.js";
import { readNpyPair } from "./npy.js";
import { readNpz } from "./npz.js";
import { SOURCES } from "./sources.js";

export interface OpenOptions
  extends NamedDatasetOptions,
    Pick<CsvOptions, "labelColumn" | "header" | "delimiter"> {
  split?: Split;
  /** For a samples .npy file: the labels .npy file. */
  labels?: string;
  classNames?: readonly string[];
}

/**
 * Open a dataset from what a user typed after `--data`: a name (mnist, fashion-mnist, cifar10), a file (.csv,
 * .tsv, .npz, .npy with `labels`, a CIFAR-10 .bin batch) or a folder (CIFAR binary batches, MNIST-style IDX files,
 * or an image folder with one sub-folder per class).
 */
export async function openDataset(spec: string, opts: OpenOptions = {}): Promise<Dataset> {
  const split = opts.split ?? "train";
  if (SOURCES[spec] && !existsSync(spec)) return openNamedDataset(spec, opts);
  if (!existsSync(spec)) {
    throw new DataError(
      `no such file or folder, and not a named dataset (${Object.keys(SOURCES).join(", ")}); check the path`,
      { file: spec },
    );
  }
  const cls = opts.classNames ? { classNames: opts.classNames } : {};
  if (statSync(spec).isDirectory()) {
    const has = (f: string) => existsSync(join(spec, f));
    if (["data_batch_1.bin", "test_batch.bin", "train.bin", "test.bin"].some(has)) {
      return openCifarFolder(spec, split, cls);
    }
    const prefix = split === "train" ? "train" : "t10k";
    const idx = (kind: string) =>
      [`${prefix}-${kind}`, `${prefix}-${kind}.gz`].map((f) => join(spec, f)).find(existsSync);
    const images = idx("images-idx3-ubyte");
    const labels = idx("labels-idx1-ubyte");
    if (images && labels) return readIdxDataset({ images, labels, name: `${spec}-${split}`, ...cls });
    return openImageFolder(spec, cls);
  }
  switch (extname(spec).toLowerCase()) {
    case ".csv":
      return readCsv(spec, { ...pick(opts), ...cls });
    case ".tsv":
      return readCsv(spec, { delimiter: "\t", ...pick(opts), ...cls });
    case ".npz":
      return readNpz(spec, cls);
    case ".npy":
      if (!opts.labels)
        throw new DataError("an .npy file holds one array: give the labels file too", { file: spec });
      return readNpyPair({ x: spec, y: opts.labels, ...cls });
    case ".bin":
      return readCifar10([spec], cls);
    default:
      throw new DataError(
        "unknown data format: give a .csv, .tsv, .npz, .npy or CIFAR .bin file, or a folder",
        { file: spec },
      );
  }
}

function pick(o: OpenOptions): CsvOptions {
  return {
    ...(o.labelColumn !== undefined ? { labelColumn: o.labelColumn } : {}),
    ...(o.header !== undefined ? { header: o.header } : {}),
    ...(o.delimiter !== undefined ? { delimiter: o.delimiter } : {}),
  };
}
