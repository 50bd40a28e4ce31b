/**
 * The serial link's frames on the line. Frames are COBS-encoded and end with a 0x00 delimiter, so a receiver
 * finds the next frame after any garbage. Before encoding, a frame is:
 *
 *   type u8 | flags u8 | session u32 BE | seq u48 BE | ack u48 BE | body | CRC-32 (IEEE) u32 BE of all before it
 *
 * Board-side code: Node built-ins only; installed beside the agent as serial-frames.mjs.
 */
import * as zlib from "node:zlib";

/** Largest frame body either side accepts. */
export const MAX_FRAME_LIMIT = 4096;
export const MIN_FRAME = 32;
export const HEADER = 18;

export const FrameType = { Hello: 1, HelloAck: 2, Data: 3, Ack: 4, Rst: 5 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
export const FLAG_FIN = 1;

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE 802.3, as zlib): node:zlib's when this Node has it (≥ 20.15), else a table-driven one. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (native) return native(data) >>> 0;
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** COBS: the bytes with every 0x00 removed (at most one extra byte per 254), plus a 0x00 delimiter. */
export function cobsEncode(src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(src.length + Math.ceil(src.length / 254) + 2);
  let codeAt = 0;
  let o = 1;
  let code = 1;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b === 0) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
    } else {
      out[o++] = b;
      code++;
      if (code === 0xff) {
        out[codeAt] = code;
        codeAt = o++;
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  out[o++] = 0;
  return out.subarray(0, o);
}

/** Decode one COBS frame (without its delimiter); null when it is malformed. */
export function cobsDecode(src: Uint8Array): Buffer | null {
  const out = Buffer.allocUnsafe(src.length);
  let o = 0;
  let i = 0;
  while (i < src.length) {
    const code = src[i++]!;
    if (code === 0) return null;
    const end = i + code - 1;
    if (end > src.length) return null;
    while (i < end) {
      const b = src[i++]!;
      if (b === 0) return null;
      out[o++] = b;
    }
    if (code !== 0xff && i < src.length) out[o++] = 0;
  }
  return out.subarray(0, o);
}

export interface RawFrame {
  type: FrameType;
  flags: number;
  session: number;
  seq: number;
  ack: number;
  body: Buffer;
}

/** A frame as line bytes (COBS + delimiter). */
export function encodeLinkFrame(f: RawFrame): Buffer {
  const raw = Buffer.allocUnsafe(HEADER + f.body.length + 4);
  raw[0] = f.type;
  raw[1] = f.flags;
  raw.writeUInt32BE(f.session >>> 0, 2);
  raw.writeUIntBE(f.seq, 6, 6);
  raw.writeUIntBE(f.ack, 12, 6);
  raw.set(f.body, HEADER);
  raw.writeUInt32BE(crc32(raw.subarray(0, HEADER + f.body.length)), HEADER + f.body.length);
  return cobsEncode(raw);
}

/** Splits line bytes at 0x00 and returns the frames whose COBS and CRC are intact; counts the others. */
export class LinkDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  bad = 0;
  constructor(private readonly maxWire: number) {}

  push(chunk: Buffer): RawFrame[] {
    const out: RawFrame[] = [];
    let start = 0;
    for (;;) {
      const z = chunk.indexOf(0, start);
      if (z < 0) {
        if (start < chunk.length) {
          this.parts.push(chunk.subarray(start));
          this.size += chunk.length - start;
          if (this.size > this.maxWire) {
            // no delimiter for longer than any frame: garbage, or a lost delimiter; drop it
            this.parts = [];
            this.size = 0;
            this.bad++;
          }
        }
        return out;
      }
      const piece = chunk.subarray(start, z);
      const enc = this.parts.length ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      this.size = 0;
      start = z + 1;
      if (enc.length === 0) continue;
      const f = enc.length <= this.maxWire ? this.parse(enc) : null;
      if (f) out.push(f);
      else this.bad++;
    }
  }

  private parse(enc: Buffer): RawFrame | null {
    const raw = cobsDecode(enc);
    if (!raw || raw.length < HEADER + 4) return null;
    const n = raw.length - 4;
    if (crc32(raw.subarray(0, n)) !== raw.readUInt32BE(n)) return null;
    const type = raw[0]! as FrameType;
    if (type < FrameType.Hello || type > FrameType.Rst) return null;
    return {
      type,
      flags: raw[1]!,
      session: raw.readUInt32BE(2),
      seq: raw.readUIntBE(6, 6),
      ack: raw.readUIntBE(12, 6),
      body: Buffer.from(raw.subarray(HEADER, n)),
    };
  }
}
