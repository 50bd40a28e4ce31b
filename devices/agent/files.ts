/**
 * Durable file operations on the board: what the agent writes survives a power cut either whole or not at all
 * (write to a temporary name, fsync, rename, fsync the folder).
 *
 * Board-side code: Node built-ins only; installed beside the agent as files.mjs.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { dirname } from "node:path";

/** A file's first `max` bytes as text, or null when it cannot be read. */
export function readText(path: string, max = 65536): string | null {
  try {
    return fs.readFileSync(path).subarray(0, max).toString("utf8");
  } catch {
    return null;
  }
}

export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // some filesystems cannot fsync a folder; renames stay atomic
  }
}

export function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w", 0o644);
  try {
    fs.writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
  fsyncDir(dirname(path));
}

export function sha256File(path: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(path, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}
