import { unzipSync } from "fflate";
import type { ArrayDataset } from "./dataset.js";
import { DataError } from "./errors.js";
import { readInput } from "./files.js";
import { DEFAULT_MAX_ZIP_ENTRY, formatBytes } from "./limits.js";
import { type ArraysOptions, arraysToDataset, parseNpy } from "./npy.js";

export interface NpzOptions extends ArraysOptions {
  /** Name of the samples array in the archive (default "x"). */
  xKey?: string;
  /** Name of the labels array (default "y"). */
  yKey?: string;
  /** Bytes one archive entry may declare or inflate to (default 384 MiB). */
  maxEntryBytes?: number;
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
  const entries = unzip(bytes, path, (name) => wanted.has(name), false, opts.maxEntryBytes);
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

/**
 * fflate allocates each kept entry at the size its zip header declares and inflates into that buffer, so the
 * declared size is checked against the cap before anything is allocated (a zip bomb's header is refused at once),
 * and the inflated length is checked against the declared one (a header that under-declares is caught too).
 */
function unzip(
  bytes: Uint8Array,
  path: string,
  keep: (name: string) => boolean,
  listOnly: boolean,
  maxEntryBytes = DEFAULT_MAX_ZIP_ENTRY,
): Record<string, Uint8Array> {
  const seen: Record<string, Uint8Array> = {};
  const declared = new Map<string, { size: number; stored: number }>();
  let out: Record<string, Uint8Array>;
  try {
    out = unzipSync(bytes, {
      filter: (f) => {
        if (listOnly) seen[f.name] = new Uint8Array(0);
        if (listOnly || !keep(f.name)) return false;
        if (f.originalSize > maxEntryBytes)
          throw new EntryTooLarge(f.name, f.originalSize, f.size, maxEntryBytes);
        // deflate never grows data by more than 5 bytes per 16 KiB block: more stored than that for the declared
        // size means the header under-declares, and fflate would inflate the whole stream into a short buffer
        if (f.size > f.originalSize + Math.ceil(f.originalSize / 16384) * 5 + 64) {
          throw new EntryTooLarge(f.name, f.originalSize, f.size, maxEntryBytes, true);
        }
        declared.set(f.name, { size: f.originalSize, stored: f.size });
        return true;
      },
    });
  } catch (e) {
    if (e instanceof EntryTooLarge) throw new DataError(e.message, { file: `${path}:${e.entry}` });
    throw new DataError(
      `not a readable NPZ (zip) archive (${(e as Error).message}); save it again with numpy.savez`,
      { file: path },
    );
  }
  if (listOnly) return seen;
  for (const [name, d] of declared) {
    const got = out[name]!.length;
    if (got !== d.size) {
      throw new DataError(
        `the zip entry inflates to ${got} bytes but its header declares ${d.size}; the archive is damaged, save it again`,
        { file: `${path}:${name}` },
      );
    }
  }
  return out;
}

class EntryTooLarge extends Error {
  constructor(
    readonly entry: string,
    size: number,
    stored: number,
    cap: number,
    underDeclared = false,
  ) {
    super(
      underDeclared
        ? `the zip entry stores ${formatBytes(stored)} compressed but declares only ${formatBytes(size)} ` +
            "uncompressed, which deflate cannot produce; the header lies (damaged or hostile archive): refused"
        : `the zip entry declares ${formatBytes(size)} uncompressed (${formatBytes(stored)} stored), over the ` +
            `${formatBytes(cap)} limit per entry; refused before inflating (raise maxEntryBytes if the archive is genuine)`,
    );
  }
}
