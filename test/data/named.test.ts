import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { createTar } from "nanotar";
import { afterEach, describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.js";
import {
  defaultCacheDir,
  fetchDataset,
  locateDataset,
  type NamedDatasetOptions,
  openNamedDataset,
} from "../../src/data/named.js";
import { type CifarArchiveSource, type IdxSource, SOURCES } from "../../src/data/sources.js";
import { DATA } from "../helpers/paths.js";
import { cifarBytes, idxBytes, serveFiles, tempDir } from "./fixtures.js";

const SHARED = DATA;

let cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});
function dir(): string {
  const t = tempDir();
  cleanup.push(t.done);
  return t.dir;
}
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

/** A tiny MNIST-like set: n images of 2×2, labels given; pixel values tag the set. */
function tinyIdx(labels: number[], tag: number) {
  const images = idxBytes(
    [labels.length, 2, 2],
    labels.flatMap((_, i) => [tag, i, 0, 255]),
  );
  return { images, labels: idxBytes([labels.length], labels) };
}

function writeMnist(root: string, labels: number[], tag: number, gz = true): void {
  mkdirSync(root, { recursive: true });
  const t = tinyIdx(labels, tag);
  const put = (name: string, b: Uint8Array) =>
    writeFileSync(join(root, gz ? `${name}.gz` : name), gz ? gzipSync(b) : b);
  put("train-images-idx3-ubyte", t.images);
  put("train-labels-idx1-ubyte", t.labels);
}

/** The MNIST source entry with sizes and checksums of fixture files (train split). */
function fixtureSource(
  images: Uint8Array,
  labels: Uint8Array,
  extra: Partial<IdxSource> = {},
): Record<string, IdxSource> {
  const m = SOURCES.mnist as IdxSource;
  return {
    mnist: {
      ...m,
      ...extra,
      files: {
        ...m.files,
        trainImages: { ...m.files.trainImages, size: images.length, sha256: sha256(images) },
        trainLabels: { ...m.files.trainLabels, size: labels.length, sha256: sha256(labels) },
      },
    },
  };
}

describe("named datasets: where they are found", () => {
  it("opens the real MNIST files from a data folder", async () => {
    const opts: NamedDatasetOptions = { dataDir: SHARED, cacheDir: dir(), download: false, env: {} };
    const test = await openNamedDataset("mnist", { ...opts, split: "test" });
    expect([test.length, test.numClasses, ...test.inputShape]).toEqual([10000, 10, 1, 28, 28]);
    expect([...test.labels.subarray(0, 10)]).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    expect(test.stats().mean[0]).toBeCloseTo(33.791, 3);
    const train = await openNamedDataset("mnist", opts);
    expect(train.length).toBe(60000);
    expect([...train.labels.subarray(0, 10)]).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(train.classNames?.[9]).toBe("9");
  });

  it("looks in --data-dir, then QAT_DATA_DIR, then the cache; raw or .gz; <root>/<name> or <root>", () => {
    const [a, b, cache] = [dir(), dir(), dir()];
    writeMnist(join(a, "mnist"), [1], 1);
    writeMnist(b, [2], 2, false);
    writeMnist(join(cache, "mnist"), [3], 3);
    const env = { QAT_DATA_DIR: b };
    expect(locateDataset("mnist", { dataDir: a, cacheDir: cache, env })).toMatchObject({
      via: "data-dir",
      dir: join(a, "mnist"),
    });
    const fromEnv = locateDataset("mnist", { cacheDir: cache, env });
    expect(fromEnv).toMatchObject({ via: "QAT_DATA_DIR", dir: b });
    expect(fromEnv?.files).toEqual([join(b, "train-images-idx3-ubyte"), join(b, "train-labels-idx1-ubyte")]);
    expect(locateDataset("mnist", { dataDir: dir(), cacheDir: cache, env: {} })).toMatchObject({
      via: "cache",
    });
    expect(locateDataset("mnist", { cacheDir: cache, env: {}, split: "test" })).toBeUndefined();
    expect(defaultCacheDir({ XDG_CACHE_HOME: "/x/c" })).toBe("/x/c/qat/datasets");
    expect(defaultCacheDir({})).toBe(join(homedir(), ".cache", "qat", "datasets"));
  });

  it("says where to put the files when the dataset is absent and downloading is off", async () => {
    const cache = dir();
    const err = await fetchDataset("fashion-mnist", {
      dataDir: "/data/x",
      cacheDir: cache,
      download: false,
      env: {},
    }).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toContain("dataset fashion-mnist (train) not found. Looked in:");
    expect(err.message).toContain("/data/x/fashion-mnist (data-dir)");
    expect(err.message).toContain(`${join(cache, "fashion-mnist")} (cache)`);
    expect(err.message).toContain(`Put these files in ${join(cache, "fashion-mnist")}`);
    expect(err.message).toContain("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz");
    await expect(fetchDataset("imagenet", { env: {} })).rejects.toThrow(
      /unknown dataset "imagenet"; named datasets are mnist, fashion-mnist, cifar10/,
    );
  });
});

describe("named datasets: download into the cache (loopback server)", () => {
  const t = tinyIdx([4, 0, 9], 7);
  const gzImages = gzipSync(t.images);
  const gzLabels = gzipSync(t.labels);

  it("downloads, checks the sha256 of the decompressed files, saves them, then uses the cache", async () => {
    const server = await serveFiles({
      "/mnist/train-images-idx3-ubyte.gz": gzImages,
      "/mnist/train-labels-idx1-ubyte.gz": gzLabels,
    });
    cleanup.push(server.close);
    const cache = dir();
    const opts: NamedDatasetOptions = {
      cacheDir: cache,
      env: { QAT_DATA_URL: server.url },
      sources: fixtureSource(t.images, t.labels),
    };
    const messages: string[] = [];
    const loc = await fetchDataset("mnist", { ...opts, onProgress: (m) => messages.push(m) });
    expect(loc.via).toBe("download");
    expect(messages).toEqual([
      `downloading ${server.url}/mnist/train-images-idx3-ubyte.gz`,
      `downloading ${server.url}/mnist/train-labels-idx1-ubyte.gz`,
    ]);
    expect(readdirSync(join(cache, "mnist")).sort()).toEqual([
      "train-images-idx3-ubyte.gz",
      "train-labels-idx1-ubyte.gz",
    ]);
    const ds = await openNamedDataset("mnist", opts);
    expect([...ds.labels]).toEqual([4, 0, 9]);
    expect(Object.values(server.hits)).toEqual([1, 1]);
    expect((await fetchDataset("mnist", opts)).via).toBe("cache");
    expect(Object.values(server.hits)).toEqual([1, 1]);
  });

  it("tries the next mirror when one fails, and checks a published md5 of the served file", async () => {
    const server = await serveFiles({
      "/good/train-images-idx3-ubyte.gz": gzImages,
      "/good/train-labels-idx1-ubyte.gz": gzLabels,
    });
    cleanup.push(server.close);
    const src = fixtureSource(t.images, t.labels, {
      mirrors: [`${server.url}/gone/`, `${server.url}/good/`],
    });
    src.mnist!.files.trainImages.md5 = md5(gzImages);
    const loc = await fetchDataset("mnist", { cacheDir: dir(), env: {}, sources: src });
    expect(loc.via).toBe("download");
    expect(server.hits["/gone/train-images-idx3-ubyte.gz"]).toBe(1);
    src.mnist!.files.trainImages.md5 = "0".repeat(32);
    const err = await fetchDataset("mnist", { cacheDir: dir(), env: {}, sources: src }).catch((e) => e);
    expect(err.message).toMatch(/good\/train-images-idx3-ubyte\.gz: md5 [0-9a-f]{32}, expected 0{32}/);
  });

  it("rejects a file whose checksum does not match and leaves nothing in the cache", async () => {
    const other = tinyIdx([4, 0, 8], 7);
    const server = await serveFiles({
      "/mnist/train-images-idx3-ubyte.gz": gzImages,
      "/mnist/train-labels-idx1-ubyte.gz": gzipSync(other.labels),
    });
    cleanup.push(server.close);
    const cache = dir();
    const opts: NamedDatasetOptions = {
      cacheDir: cache,
      env: {},
      baseUrl: server.url,
      sources: fixtureSource(t.images, t.labels),
    };
    const err = await openNamedDataset("mnist", opts).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toContain("Download failed; nothing was saved:");
    expect(err.message).toMatch(
      /train-labels-idx1-ubyte\.gz: sha256 of the decompressed file is [0-9a-f]{64}, expected/,
    );
    expect(err.message).toContain(`Put these files in ${join(cache, "mnist")}`);
    expect(existsSync(join(cache, "mnist")) ? readdirSync(join(cache, "mnist")) : []).toEqual([]);
  });

  it("a gzip bomb in place of a file stops at twice the file's known size; a published md5 is checked first", async () => {
    const member = gzipSync(Buffer.alloc(1 << 20), { level: 9 });
    const bomb = Buffer.concat(Array.from({ length: 512 }, () => member)); // 512 MiB of zeros, ~0.5 MB
    const server = await serveFiles({
      "/mnist/train-images-idx3-ubyte.gz": gzImages,
      "/mnist/train-labels-idx1-ubyte.gz": bomb,
    });
    cleanup.push(server.close);
    const cache = dir();
    const opts = (extra: Partial<IdxSource> = {}, md5s = false): NamedDatasetOptions => {
      const sources = fixtureSource(t.images, t.labels, extra);
      if (md5s) sources.mnist!.files.trainLabels.md5 = md5(gzipSync(t.labels));
      return { cacheDir: cache, env: {}, baseUrl: server.url, sources };
    };
    const t0 = performance.now();
    const err = await openNamedDataset("mnist", opts()).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(
      new RegExp(
        `train-labels-idx1-ubyte\\.gz: the gzip data \\(.*compressed\\) decompresses to more than the ${2 * t.labels.length} bytes limit`,
      ),
    );
    expect(performance.now() - t0).toBeLessThan(5000);
    const withMd5 = await openNamedDataset("mnist", opts({}, true)).catch((e) => e);
    expect(withMd5.message).toMatch(/train-labels-idx1-ubyte\.gz: md5 [0-9a-f]{32}, expected/);
    expect(existsSync(join(cache, "mnist")) ? readdirSync(join(cache, "mnist")) : []).toEqual([]);
  });

  it("offline: a clear error naming the folder and the files", async () => {
    const server = await serveFiles({});
    await server.close(); // nothing listens on this port any more
    const cache = dir();
    const err = await fetchDataset("mnist", { cacheDir: cache, env: { QAT_DATA_URL: server.url } }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toContain("Download failed (offline? the servers could not be reached):");
    expect(err.message).toMatch(/mnist\/train-images-idx3-ubyte\.gz: ECONNREFUSED/);
    expect(err.message).toContain(
      `Put these files in ${join(cache, "mnist")} (or in <folder>/mnist/ and pass --data-dir <folder> or set QAT_DATA_DIR):`,
    );
    expect(existsSync(join(cache, "mnist"))).toBe(false);
  });

  it("downloads CIFAR-10 as the binary tarball: md5, structure of every batch, then extraction", async () => {
    const base = SOURCES.cifar10 as CifarArchiveSource;
    const files = [...base.files.train, ...base.files.test].map((f, i) => ({
      name: `cifar-10-batches-bin/${f.name}`,
      data: cifarBytes([[i], [9]]),
    }));
    files.push({
      name: "cifar-10-batches-bin/batches.meta.txt",
      data: new TextEncoder().encode(base.classNames.join("\n")),
    });
    const tgz = gzipSync(createTar(files));
    const small = (f: { name: string; remote: string; size: number }) => ({ ...f, size: 2 * 3073 });
    const src: CifarArchiveSource = {
      ...base,
      archive: { ...base.archive, md5: md5(tgz) },
      files: { ...base.files, train: base.files.train.map(small), test: base.files.test.map(small) },
    };
    const server = await serveFiles({ "/cifar10/cifar-10-binary.tar.gz": tgz });
    cleanup.push(server.close);
    const cache = dir();
    const test = await openNamedDataset("cifar10", {
      cacheDir: cache,
      env: {},
      baseUrl: server.url,
      split: "test",
      sources: { cifar10: src },
    });
    expect([...test.labels]).toEqual([5, 9]);
    const train = await openNamedDataset("cifar10", {
      cacheDir: cache,
      env: {},
      split: "train",
      sources: { cifar10: src },
      download: false,
    });
    expect([...train.labels]).toEqual([0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
    expect(readdirSync(join(cache, "cifar10")).length).toBe(7);

    // a batch with a label of 10 inside an otherwise good archive: rejected, nothing saved
    const bad = gzipSync(
      createTar(files.map((f, i) => (i === 2 ? { ...f, data: cifarBytes([[1], [10]]) } : f))),
    );
    const server2 = await serveFiles({ "/cifar10/cifar-10-binary.tar.gz": bad });
    cleanup.push(server2.close);
    const cache2 = dir();
    const err = await fetchDataset("cifar10", {
      cacheDir: cache2,
      env: {},
      baseUrl: server2.url,
      sources: { cifar10: { ...src, archive: { ...src.archive, md5: md5(bad) } } },
    }).catch((e) => e);
    expect(err.message).toMatch(/data_batch_3\.bin: label 10 of record 1 is not 0–9/);
    expect(existsSync(join(cache2, "cifar10"))).toBe(false);
  });
});
