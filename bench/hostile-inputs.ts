/**
 * Hostile inputs, generated (never kept in the repository): gzip and zip bombs, image headers declaring huge
 * sizes. Shared by the hostile-input tests (test/data/hostile.test.ts) and their bench (bench/hostile.ts).
 */
import { gzipSync } from "node:zlib";
import { encode as encodePng } from "fast-png";

export const MiB = 1 << 20;

/**
 * A gzip bomb: `total` bytes of zeros as concatenated 1 MiB gzip members (gunzip reads every member), about 1 KB
 * of input per MiB of output — 1 GiB → ~1 MB, built in a few milliseconds without ever holding the 1 GiB.
 */
export function gzipBomb(total: number): Buffer {
  const member = gzipSync(Buffer.alloc(MiB), { level: 9 });
  return Buffer.concat(Array.from({ length: total / MiB }, () => member));
}

/** A zip holding one deflated entry whose header declares `declared` bytes uncompressed. */
export function zipWith(name: string, deflated: Uint8Array, declared: number): Uint8Array {
  const n = Buffer.from(name);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8); // deflate
  local.writeUInt32LE(deflated.length, 18);
  local.writeUInt32LE(declared, 22);
  local.writeUInt16LE(n.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(deflated.length, 20);
  central.writeUInt32LE(declared, 24);
  central.writeUInt16LE(n.length, 28);
  const cdOffset = 30 + n.length + deflated.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(46 + n.length, 12);
  end.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([local, n, deflated, central, n, end]);
}

/** A PNG whose IHDR declares w×h (with a correct header and no pixel data worth decoding). */
export function pngHeader(w: number, h: number): Uint8Array {
  const b = Buffer.from(encodePng({ width: 1, height: 1, data: new Uint8Array(1), channels: 1 }));
  b.writeUInt32BE(w, 16);
  b.writeUInt32BE(h, 20);
  return b;
}

/** A JPEG start-of-frame header declaring 65535×65535, one component. */
export const HUGE_JPEG_SOF = Buffer.from([
  0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x11, 0x00,
]);
