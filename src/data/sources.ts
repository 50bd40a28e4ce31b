/**
 * Where the named datasets come from and how a download is checked: the one table of known checksums.
 *
 * - MNIST: sha256 of each *decompressed* file, as recorded in ../shared/data/SOURCES.md (verified there against
 *   LeCun's published md5 values and an independent copy). Mirrors re-gzip the files, so the .gz bytes differ
 *   between mirrors while the decompressed content does not.
 * - Fashion-MNIST: md5 of each .gz file as published in the README of zalandoresearch/fashion-mnist (served
 *   unchanged by the canonical host). No authoritative sha256 of the decompressed files was found, so the
 *   decompressed content is checked by structure (IDX magic, dimensions, exact size).
 * - CIFAR-10: md5 of `cifar-10-binary.tar.gz` as published on https://www.cs.toronto.edu/~kriz/cifar.html. No
 *   authoritative per-file sha256 was found; each extracted batch is checked by structure (exactly 10,000 records
 *   of 3,073 bytes, labels 0–9).
 */

export interface KnownFile {
  /** File name in the dataset folder (without .gz; a .gz copy is accepted too). */
  name: string;
  /** Name on the server. */
  remote: string;
  /** sha256 of the decompressed content, when an authoritative value is known. */
  sha256?: string;
  /** md5 of the file as served, when its publisher gives one. */
  md5?: string;
  /** Exact decompressed size in bytes. */
  size: number;
}

export interface IdxSource {
  kind: "idx";
  name: string;
  /** Base URLs tried in order. */
  mirrors: string[];
  files: { trainImages: KnownFile; trainLabels: KnownFile; testImages: KnownFile; testLabels: KnownFile };
  classNames: readonly string[];
}

export interface CifarArchiveSource {
  kind: "cifar10";
  name: string;
  mirrors: string[];
  archive: { remote: string; md5?: string; sha256?: string; size?: number; folder: string };
  /** The extracted batch files and their exact sizes. */
  files: { train: KnownFile[]; test: KnownFile[]; meta: string };
  classNames: readonly string[];
}

export type DatasetSource = IdxSource | CifarArchiveSource;

const idxFile = (name: string, size: number, extra: { sha256?: string; md5?: string } = {}): KnownFile => ({
  name,
  remote: `${name}.gz`,
  size,
  ...extra,
});

const DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"] as const;

export const SOURCES: Record<string, DatasetSource> = {
  mnist: {
    kind: "idx",
    name: "mnist",
    mirrors: [
      "https://ossci-datasets.s3.amazonaws.com/mnist/",
      "https://storage.googleapis.com/cvdf-datasets/mnist/",
      "http://yann.lecun.com/exdb/mnist/",
    ],
    files: {
      trainImages: idxFile("train-images-idx3-ubyte", 47040016, {
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
      }),
      trainLabels: idxFile("train-labels-idx1-ubyte", 60008, {
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
      }),
      testImages: idxFile("t10k-images-idx3-ubyte", 7840016, {
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
      }),
      testLabels: idxFile("t10k-labels-idx1-ubyte", 10008, {
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
      }),
    },
    classNames: DIGITS,
  },
  "fashion-mnist": {
    kind: "idx",
    name: "fashion-mnist",
    mirrors: ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    files: {
      trainImages: idxFile("train-images-idx3-ubyte", 47040016, { md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d" }),
      trainLabels: idxFile("train-labels-idx1-ubyte", 60008, { md5: "25c81989df183df01b3e8a0aad5dffbe" }),
      testImages: idxFile("t10k-images-idx3-ubyte", 7840016, { md5: "bef4ecab320f06d8554ea6380940ec79" }),
      testLabels: idxFile("t10k-labels-idx1-ubyte", 10008, { md5: "bb300cfdad3c16e7a12a480ee83cd310" }),
    },
    classNames: [
      "T-shirt/top",
      "Trouser",
      "Pullover",
      "Dress",
      "Coat",
      "Sandal",
      "Shirt",
      "Sneaker",
      "Bag",
      "Ankle boot",
    ],
  },
  cifar10: {
    kind: "cifar10",
    name: "cifar10",
    mirrors: ["https://www.cs.toronto.edu/~kriz/"],
    archive: {
      remote: "cifar-10-binary.tar.gz",
      md5: "c32a1d4ab5d03f1284b67883e8d87530",
      folder: "cifar-10-batches-bin",
    },
    files: {
      train: [1, 2, 3, 4, 5].map((i) => ({ name: `data_batch_${i}.bin`, remote: "", size: 30730000 })),
      test: [{ name: "test_batch.bin", remote: "", size: 30730000 }],
      meta: "batches.meta.txt",
    },
    classNames: ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
  },
};

export const DATASET_NAMES = Object.keys(SOURCES);
