import { DataError } from "./errors.js";
import { DEFAULT_MAX_FILE, gunzipCapped, isGzip, readRegularFile } from "./limits.js";

/**
 * Read a whole input file, turning the usual failures (missing, a folder, no permission, not a regular file, over
 * `maxBytes`) into a `DataError` that names the file. `what` says what the file was supposed to be ("CSV file").
 */
export function readInput(path: string, what: string, maxBytes = DEFAULT_MAX_FILE): Buffer {
  try {
    return readRegularFile(path, what, maxBytes);
  } catch (e) {
    // keep the wording users and scripts already match for a missing file
    if (e instanceof DataError && /\(ENOENT\)/.test(e.message)) {
      throw new DataError(`${what} not found (ENOENT); check the path`, { file: path });
    }
    throw e;
  }
}

/** Gunzip (with the decompressed-size cap) when the bytes start with the gzip magic. */
export function maybeGunzip(bytes: Uint8Array, path: string, maxBytes?: number): Uint8Array {
  return isGzip(bytes) ? gunzipCapped(bytes, path, maxBytes) : bytes;
}

export function errCode(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ?? err?.message ?? String(e);
}
