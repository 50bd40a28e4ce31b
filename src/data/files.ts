import { readFileSync, statSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { DataError } from "./errors.js";

/**
 * Read a whole input file, turning the usual failures (missing, a folder, no permission) into a `DataError` that
 * names the file. `what` says what the file was supposed to be ("CSV file", "CIFAR batch").
 */
export function readInput(path: string, what: string): Buffer {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new DataError(`${what} not found (${errCode(e)}); check the path`, { file: path });
  }
  if (st.isDirectory()) throw new DataError(`expected a ${what}, found a folder`, { file: path });
  try {
    return readFileSync(path);
  } catch (e) {
    throw new DataError(`cannot read the ${what} (${errCode(e)}); check its permissions`, { file: path });
  }
}

/** Gunzip when the bytes start with the gzip magic; a corrupt stream is a `DataError` naming the file. */
export function maybeGunzip(bytes: Uint8Array, path: string): Uint8Array {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`corrupt gzip data (${(e as Error).message}); download the file again`, {
        file: path,
      });
    }
  }
  return bytes;
}

export function errCode(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ?? err?.message ?? String(e);
}
