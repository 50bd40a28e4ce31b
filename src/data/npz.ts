import { unzipSync } from "fflate";
import type { ArrayDataset } from "./dataset.js";
import { DataError } from "./errors.js";
import { readInput } from "./files.js";
import { type ArraysOptions, arraysToDataset, parseNpy } from "./npy.js";

export interface NpzOptions extends ArraysOptions {
  /** Name of the samples array in the archive (default "x"). */
  xKey?: string;
  /** Name of the labels array (default "y"). */
  yKey?: string;
}

/** The names of the arrays in an NPZ archive (numpy.savez / savez_compressed). */
export function listNpz(path: string): string[] {
  return Object.keys(unzip(readInput(path, "NPZ file"), path, () => false, true));
}

/** A dataset from the x and y arrays of an NPZ archive (stored or deflate-compressed). */
export function readNpz(path: string, opts: NpzOptions = {}): ArrayDataset {
  const xKey = opts.xKey ?? "x";
  const yKey = opts.yKey ?? "y";
  const bytes = readInput(path, "NPZ file");
  const wanted = new Set([`${xKey}.npy`, `${yKey}.npy`]);
  const entries = unzip(bytes, path, (name) => wanted.has(name), false);
  for (const key of [xKey, yKey]) {
    if (!entries[`${key}.npy`]) {
      const names = Object.keys(unzip(bytes, path, () => false, true)).map((n) => n.replace(/\.npy$/, ""));
      throw new DataError(
        `no array named "${key}" in the archive (it holds: ${names.join(", ") || "nothing"}); ` +
          `save it as numpy.savez(path, ${xKey}=..., ${yKey}=...) or choose the names (xKey, yKey)`,
        { file: path },
      );
    }
  }
  const xFile = `${path}:${xKey}.npy`;
  const yFile = `${path}:${yKey}.npy`;
  const x = parseNpy(entries[`${xKey}.npy`]!, xFile);
  const y = parseNpy(entries[`${yKey}.npy`]!, yFile);
  return arraysToDataset(x, y, { x: xFile, y: yFile }, { name: path, ...opts });
}

function unzip(
  bytes: Uint8Array,
  path: string,
  keep: (name: string) => boolean,
  listOnly: boolean,
): Record<string, Uint8Array> {
  const seen: Record<string, Uint8Array> = {};
  try {
    const out = unzipSync(bytes, {
      filter: (f) => {
        if (listOnly) seen[f.name] = new Uint8Array(0);
        return !listOnly && keep(f.name);
      },
    });
    return listOnly ? seen : out;
  } catch (e) {
    throw new DataError(
      `not a readable NPZ (zip) archive (${(e as Error).message}); save it again with numpy.savez`,
      { file: path },
    );
  }
}
