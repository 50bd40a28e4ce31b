/**
 * Limits on what the data layer will read from files and the network, so a hostile or damaged input fails with a
 * clear `DataError` instead of filling memory or hanging: decompressed sizes, zip entries, file sizes, image
 * pixels, and only regular files (no FIFOs or devices, whatever a symlink points to).
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { DataError } from "./errors.js";

const MiB = 1024 * 1024;

/**
 * The largest real file a dataset decompresses to is CIFAR-10's binary tar (6 × 30,730,000-byte batches plus
 * meta: about 185 MB); twice that, rounded up, leaves room for larger honest files while a gzip bomb stops early.
 */
export const DEFAULT_MAX_DECOMPRESSED = 384 * MiB;
/** One NPZ entry: the same ceiling as gzip (an entry is one array). */
export const DEFAULT_MAX_ZIP_ENTRY = 384 * MiB;
/** A file read whole into memory (NPY/NPZ/CSV/CIFAR batch/image). Node cannot read a file above 2 GiB at once. */
export const DEFAULT_MAX_FILE = 1024 * MiB;
/** Pixels a PNG/JPEG header may declare: 64 megapixels (an 8000×8000 photo), about 192 MB as RGB bytes. */
export const DEFAULT_MAX_PIXELS = 64_000_000;

export interface DataLimits {
  /** Bytes a gzip stream may decompress to. */
  maxDecompressedBytes?: number;
  /** Bytes one zip (NPZ) entry may declare or inflate to. */
  maxZipEntryBytes?: number;
  /** Bytes of a file read whole. */
  maxFileBytes?: number;
  /** Width × height an image header may declare. */
  maxPixels?: number;
}

/** Human size: "384 MiB", "1.5 GiB", "812 bytes". */
export function formatBytes(n: number): string {
  if (n >= 1024 * MiB) return `${+(n / (1024 * MiB)).toFixed(2)} GiB`;
  if (n >= MiB) return `${+(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

function kindOf(st: ReturnType<typeof fstatSync>): string {
  if (st.isDirectory()) return "a folder";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/**
 * Read a whole regular file, at most `maxBytes`. The file is opened non-blocking (a FIFO with no writer would
 * otherwise block `open` forever) and checked with fstat on the open descriptor, so a symlink is followed once and
 * what it resolves to is what is checked and read: a `*.jpg` link to /dev/zero is refused, not read.
 */
export function readRegularFile(path: string, what: string, maxBytes = DEFAULT_MAX_FILE): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === "EISDIR") throw new DataError(`expected a ${what}, found a folder`, { file: path });
    const hint = code === "ENOENT" ? "check the path" : "check its permissions";
    throw new DataError(`cannot read the ${what} (${code}); ${hint}`, { file: path });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new DataError(
        `the ${what} is ${kindOf(st)}, not a regular file (symlinks are followed); only regular files are read: remove it`,
        { file: path },
      );
    }
    if (st.size > maxBytes) {
      throw new DataError(
        `the ${what} is ${formatBytes(st.size)}, over the ${formatBytes(maxBytes)} limit; ` +
          "raise the limit (maxFileBytes) if the file is genuine",
        { file: path },
      );
    }
    // read exactly the size fstat reported: a file growing while read cannot push past the limit
    const out = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < st.size) {
      const n = readSync(fd, out, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return got === st.size ? out : out.subarray(0, got);
  } catch (e) {
    if (e instanceof DataError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new DataError(`cannot read the ${what} (${code}); check its permissions`, { file: path });
  } finally {
    closeSync(fd);
  }
}

/** True when the bytes start with the gzip magic. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Gunzip with an output ceiling: zlib stops as soon as the output passes `maxBytes`, so a gzip bomb costs at most
 * that much memory, and the error says how small the input was and what to raise.
 */
export function gunzipCapped(
  bytes: Uint8Array,
  file: string | undefined,
  maxBytes = DEFAULT_MAX_DECOMPRESSED,
) {
  try {
    // 1 MiB output chunks: with zlib's default 16 KiB, a bomb of many small gzip members inflates 4× slower
    return gunzipSync(bytes, { maxOutputLength: maxBytes, chunkSize: MiB });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ERR_BUFFER_TOO_LARGE" || err instanceof RangeError) {
      throw new DataError(
        `the gzip data (${formatBytes(bytes.length)} compressed) decompresses to more than the ` +
          `${formatBytes(maxBytes)} limit; a genuine dataset file is smaller, so the file is damaged or hostile ` +
          "(raise maxDecompressedBytes only if you trust it)",
        { file },
      );
    }
    throw new DataError(
      `the gzip stream is truncated or corrupt (${err.message}; ${bytes.length} compressed bytes); download the file again`,
      { file },
    );
  }
}

/** Refuse an image whose header declares more than `maxPixels`, before anything is decoded. */
export function checkPixels(width: number, height: number, file: string, maxPixels = DEFAULT_MAX_PIXELS) {
  if (width * height > maxPixels) {
    throw new DataError(
      `the image header declares ${width}×${height} = ${((width * height) / 1e6).toFixed(1)} megapixels, ` +
        `over the ${(maxPixels / 1e6).toFixed(1)}-megapixel limit; downscale it (or raise maxPixels if it is genuine)`,
      { file },
    );
  }
}
