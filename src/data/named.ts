import { existsSync, mkdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseTar } from "nanotar";
import { writeFileAtomic } from "../util/atomic.js";
import { openCifarFolder } from "./cifar.js";
import type { ArrayDataset } from "./dataset.js";
import {
  AttemptError,
  digest,
  type FailedAttempt,
  type FetchOptions,
  fetchBytes,
  urlJoin,
} from "./download.js";
import { DataError } from "./errors.js";
import { parseIdx } from "./idx.js";
import { readIdxDataset } from "./idx-dataset.js";
import { DEFAULT_MAX_DECOMPRESSED, gunzipCapped, isGzip } from "./limits.js";
import {
  type CifarArchiveSource,
  type DatasetSource,
  type IdxSource,
  type KnownFile,
  SOURCES,
} from "./sources.js";

export type Split = "train" | "test";

export interface NamedDatasetOptions extends FetchOptions {
  split?: Split;
  /** Looked in first (the `--data-dir` option). */
  dataDir?: string;
  /** The download cache (default `$XDG_CACHE_HOME/qat/datasets` or `~/.cache/qat/datasets`). */
  cacheDir?: string;
  /** Download when not found (default true). */
  download?: boolean;
  /** Replace the mirrors: files are fetched from `<baseUrl>/<dataset>/<file>` (default `$QAT_DATA_URL`). */
  baseUrl?: string;
  /** Override the table of sources (tests inject fixture checksums). */
  sources?: Record<string, DatasetSource>;
  /** Environment to read QAT_DATA_DIR, QAT_DATA_URL, XDG_CACHE_HOME from (default process.env). */
  env?: Record<string, string | undefined>;
}

/** Where a named dataset's files were found (or put). */
export interface Located {
  dir: string;
  /** Full paths, in the order the split needs them. */
  files: string[];
  /** How it was found. */
  via: "data-dir" | "QAT_DATA_DIR" | "cache" | "download";
}

export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  const base =
    env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.length > 0 ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "qat", "datasets");
}

/** The file names a split needs, in the folder layout (IDX without .gz; either form is accepted). */
export function splitFiles(src: DatasetSource, split: Split): string[] {
  if (src.kind === "idx") {
    const f = src.files;
    return split === "train"
      ? [f.trainImages.name, f.trainLabels.name]
      : [f.testImages.name, f.testLabels.name];
  }
  return src.files[split].map((f) => f.name);
}

function sourceOf(name: string, opts: NamedDatasetOptions): DatasetSource {
  const table = opts.sources ?? SOURCES;
  const src = table[name];
  if (!src) {
    throw new DataError(
      `unknown dataset "${name}"; named datasets are ${Object.keys(table).join(", ")} ` +
        "(or give a path to CSV, NPY/NPZ, IDX, CIFAR binary or an image folder)",
    );
  }
  return src;
}

/** The folders searched, in order: --data-dir, $QAT_DATA_DIR, then the cache. */
export function searchPlaces(
  name: string,
  opts: NamedDatasetOptions,
): { dir: string; via: Located["via"] }[] {
  const env = opts.env ?? process.env;
  const src = sourceOf(name, opts);
  const sub = (root: string) => {
    const dirs = [join(root, name), root];
    if (src.kind === "cifar10")
      dirs.splice(1, 0, join(root, name, src.archive.folder), join(root, src.archive.folder));
    return dirs;
  };
  const out: { dir: string; via: Located["via"] }[] = [];
  if (opts.dataDir) for (const d of sub(opts.dataDir)) out.push({ dir: d, via: "data-dir" });
  if (env.QAT_DATA_DIR) for (const d of sub(env.QAT_DATA_DIR)) out.push({ dir: d, via: "QAT_DATA_DIR" });
  const cache = opts.cacheDir ?? defaultCacheDir(env);
  out.push({ dir: join(cache, name), via: "cache" });
  return out;
}

/** Find a named dataset's split on disk, without downloading. */
export function locateDataset(name: string, opts: NamedDatasetOptions = {}): Located | undefined {
  const src = sourceOf(name, opts);
  const split = opts.split ?? "train";
  for (const place of searchPlaces(name, opts)) {
    const files = splitFiles(src, split).map((f) => findFile(place.dir, f, src.kind === "idx"));
    if (files.every((f) => f !== undefined))
      return { dir: place.dir, files: files as string[], via: place.via };
  }
  return undefined;
}

function findFile(dir: string, name: string, gzOk: boolean): string | undefined {
  for (const f of gzOk ? [name, `${name}.gz`] : [name]) {
    const p = join(dir, f);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

/**
 * Find the split of a named dataset (mnist, fashion-mnist, cifar10) in --data-dir, $QAT_DATA_DIR or the cache,
 * downloading it into the cache when absent: checked (checksum and structure) in memory, then written to a
 * temporary file and renamed, so the cache never holds a partial or unverified file.
 */
export async function fetchDataset(name: string, opts: NamedDatasetOptions = {}): Promise<Located> {
  const found = locateDataset(name, opts);
  if (found) return found;
  const src = sourceOf(name, opts);
  const split = opts.split ?? "train";
  const env = opts.env ?? process.env;
  const dir = join(opts.cacheDir ?? defaultCacheDir(env), name);
  const need = splitFiles(src, split);
  if (opts.download === false) throw notFound(name, src, split, opts, dir, []);
  const baseUrl = opts.baseUrl ?? env.QAT_DATA_URL;
  const mirrors = baseUrl ? [urlJoin(baseUrl, `${name}/`)] : src.mirrors;
  const failed: FailedAttempt[] = [];
  const ok =
    src.kind === "idx"
      ? await downloadIdx(src, split, mirrors, dir, failed, opts)
      : await downloadCifar(src, mirrors, dir, failed, opts);
  if (!ok) throw notFound(name, src, split, opts, dir, failed);
  return { dir, files: need.map((f) => findFile(dir, f, src.kind === "idx")!), via: "download" };
}

/** Open the split of a named dataset (see fetchDataset for where it is looked for). */
export async function openNamedDataset(name: string, opts: NamedDatasetOptions = {}): Promise<ArrayDataset> {
  const src = sourceOf(name, opts);
  const split = opts.split ?? "train";
  const loc = await fetchDataset(name, opts);
  if (src.kind === "idx") {
    return readIdxDataset({
      images: loc.files[0]!,
      labels: loc.files[1]!,
      name: `${name}-${split}`,
      classNames: src.classNames,
    });
  }
  return openCifarFolder(loc.dir, split, { name: `${name}-${split}`, classNames: src.classNames });
}

async function downloadIdx(
  src: IdxSource,
  split: Split,
  mirrors: string[],
  dir: string,
  failed: FailedAttempt[],
  opts: FetchOptions,
): Promise<boolean> {
  const f = src.files;
  const wanted = split === "train" ? [f.trainImages, f.trainLabels] : [f.testImages, f.testLabels];
  // fetch and check every missing file of the split before writing any, so a failure leaves the cache unchanged
  const verified: [string, Uint8Array][] = [];
  for (const file of wanted) {
    if (findFile(dir, file.name, true)) continue;
    let done = false;
    for (const base of mirrors) {
      const url = urlJoin(base, file.remote);
      try {
        const bytes = await fetchBytes(url, opts);
        checkIdxDownload(bytes, file, url);
        verified.push([file.remote.endsWith(".gz") ? `${file.name}.gz` : file.name, bytes]);
        done = true;
        break;
      } catch (e) {
        if (!(e instanceof AttemptError)) throw e;
        failed.push(e.attempt);
      }
    }
    if (!done) return false;
  }
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of verified) writeFileAtomic(join(dir, name), bytes);
  return true;
}

function checkIdxDownload(bytes: Uint8Array, file: KnownFile, url: string): void {
  const bad = (reason: string) => new AttemptError({ url, kind: "content", reason });
  if (file.md5) {
    const md5 = digest("md5", bytes);
    if (md5 !== file.md5) throw bad(`md5 ${md5}, expected ${file.md5}`);
  }
  // the md5 above is of the compressed bytes, so a tampered file is refused before it is inflated; the cap
  // (twice the file's known size) bounds the rest
  const raw = isGzip(bytes)
    ? contentGunzip(bytes, url, Math.min(2 * file.size, DEFAULT_MAX_DECOMPRESSED))
    : bytes;
  if (raw.length !== file.size) throw bad(`${raw.length} bytes after decompression, expected ${file.size}`);
  if (file.sha256) {
    const sha = digest("sha256", raw);
    if (sha !== file.sha256) throw bad(`sha256 of the decompressed file is ${sha}, expected ${file.sha256}`);
  }
  try {
    parseIdx(raw, url);
  } catch (e) {
    if (e instanceof DataError) throw bad(`not a valid IDX file (${e.message})`);
    throw e;
  }
}

async function downloadCifar(
  src: CifarArchiveSource,
  mirrors: string[],
  dir: string,
  failed: FailedAttempt[],
  opts: FetchOptions,
): Promise<boolean> {
  for (const base of mirrors) {
    const url = urlJoin(base, src.archive.remote);
    try {
      const gz = await fetchBytes(url, opts);
      const bad = (reason: string) => new AttemptError({ url, kind: "content", reason });
      if (src.archive.md5 && digest("md5", gz) !== src.archive.md5) {
        throw bad(`md5 ${digest("md5", gz)}, expected ${src.archive.md5}`);
      }
      if (src.archive.sha256 && digest("sha256", gz) !== src.archive.sha256) {
        throw bad(`sha256 ${digest("sha256", gz)}, expected ${src.archive.sha256}`);
      }
      const tar = contentGunzip(gz, url, DEFAULT_MAX_DECOMPRESSED);
      let items: ReturnType<typeof parseTar>;
      try {
        items = parseTar(tar);
      } catch (e) {
        throw bad(`not a readable tar archive (${(e as Error).message})`);
      }
      const byName = new Map(
        items.map((it) => [it.name.replace(/^\.\//, ""), "data" in it ? it.data : undefined]),
      );
      const all = [...src.files.train, ...src.files.test];
      const out: [string, Uint8Array][] = [];
      for (const f of all) {
        const data = byName.get(`${src.archive.folder}/${f.name}`);
        if (!data) throw bad(`the archive has no ${src.archive.folder}/${f.name}`);
        if (data.length !== f.size) throw bad(`${f.name} is ${data.length} bytes, expected ${f.size}`);
        for (let r = 0; r < data.length; r += 3073) {
          if (data[r]! > 9) throw bad(`${f.name}: label ${data[r]} of record ${r / 3073} is not 0–9`);
        }
        if (f.sha256 && digest("sha256", data) !== f.sha256) throw bad(`sha256 of ${f.name} does not match`);
        out.push([f.name, data]);
      }
      const meta = byName.get(`${src.archive.folder}/${src.files.meta}`);
      if (meta) out.push([src.files.meta, meta]);
      mkdirSync(dir, { recursive: true });
      for (const [name, data] of out) writeFileAtomic(join(dir, name), data);
      return true;
    } catch (e) {
      if (!(e instanceof AttemptError)) throw e;
      failed.push(e.attempt);
    }
  }
  return false;
}

/** Gunzip a download under a cap; a bomb or a corrupt stream is this attempt's content failure. */
function contentGunzip(bytes: Uint8Array, url: string, maxBytes: number): Uint8Array {
  try {
    return gunzipCapped(bytes, undefined, maxBytes);
  } catch (e) {
    if (e instanceof DataError) throw new AttemptError({ url, kind: "content", reason: e.message });
    throw e;
  }
}

function notFound(
  name: string,
  src: DatasetSource,
  split: Split,
  opts: NamedDatasetOptions,
  cacheDir: string,
  failed: FailedAttempt[],
): DataError {
  const places = searchPlaces(name, opts).map((p) => `${p.dir} (${p.via})`);
  const files =
    src.kind === "idx"
      ? splitFiles(src, split).map((f) => `${f}.gz`)
      : [...splitFiles(src, split), `(from ${src.archive.remote}, folder ${src.archive.folder})`];
  const lines = [`dataset ${name} (${split}) not found. Looked in:`, ...places.map((p) => `  ${p}`)];
  if (failed.length > 0) {
    const offline = failed.every((a) => a.kind === "network");
    lines.push(
      offline
        ? "Download failed (offline? the servers could not be reached):"
        : "Download failed; nothing was saved:",
    );
    for (const a of failed) lines.push(`  ${a.url}: ${a.reason}`);
  } else if (opts.download === false) {
    lines.push("Downloading is off.");
  }
  lines.push(
    `Put these files in ${cacheDir} (or in <folder>/${name}/ and pass --data-dir <folder> or set QAT_DATA_DIR):`,
    `  ${files.join(", ")}`,
  );
  return new DataError(lines.join("\n"));
}
