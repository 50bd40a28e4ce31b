/**
 * The link handshake: HELLO / HELLO_ACK carry protocol versions, capabilities, maximum frame body, window and line
 * rate; each end takes the smaller of both sides' frame and window.
 *
 * Board-side code: Node built-ins only; installed beside the agent as serial-handshake.mjs.
 */
import { MIN_FRAME } from "./frames.js";
import type { LinkOptions, Negotiated } from "./options.js";

export const LINK_VERSION = 1;
export const LINK_CAPABILITIES = ["cobs", "crc32", "adaptive-frames", "fast-retransmit", "keepalive"];

export interface HelloBody {
  versions: number[];
  capabilities: string[];
  maxFrame: number;
  window: number;
  baud: number;
}

/**
 * HELLO / HELLO_ACK body, binary and short (a noisy line must get it through): versions bitmap u8 (bit v-1),
 * capabilities bitmap u16 (over LINK_CAPABILITIES), maxFrame u16, window u32, baud u32.
 */
export function helloBody(
  o: { maxFrame: number; window: number; baud: number },
  versions = [LINK_VERSION],
  caps = LINK_CAPABILITIES,
): Buffer {
  const b = Buffer.alloc(13);
  b[0] = versions.reduce((m, v) => m | (1 << (v - 1)), 0);
  b.writeUInt16BE(
    caps.reduce(
      (m, c) => (LINK_CAPABILITIES.indexOf(c) >= 0 ? m | (1 << LINK_CAPABILITIES.indexOf(c)) : m),
      0,
    ),
    1,
  );
  b.writeUInt16BE(o.maxFrame, 3);
  b.writeUInt32BE(o.window, 5);
  b.writeUInt32BE(o.baud >>> 0, 9);
  return b;
}

export function parseHello(body: Buffer): HelloBody | null {
  if (body.length < 13) return null;
  const versions: number[] = [];
  for (let v = 1; v <= 8; v++) if (body[0]! & (1 << (v - 1))) versions.push(v);
  const mask = body.readUInt16BE(1);
  return {
    versions,
    capabilities: LINK_CAPABILITIES.filter((_, i) => mask & (1 << i)),
    maxFrame: body.readUInt16BE(3),
    window: body.readUInt32BE(5),
    baud: body.readUInt32BE(9),
  };
}

export function negotiate(mine: Required<LinkOptions>, theirs: HelloBody): Negotiated | string {
  const common = theirs.versions.filter((v) => v === LINK_VERSION);
  if (!common.length) {
    return `no common link protocol version (this side speaks ${LINK_VERSION}, the peer ${theirs.versions.join(", ")})`;
  }
  const maxFrame = Math.max(MIN_FRAME, Math.min(mine.maxFrame, Math.floor(theirs.maxFrame)));
  return {
    version: LINK_VERSION,
    capabilities: LINK_CAPABILITIES.filter((c) => (theirs.capabilities ?? []).includes(c)),
    maxFrame,
    window: Math.max(2 * maxFrame, Math.min(mine.window, Math.floor(theirs.window))),
    peer: theirs.baud ? `${theirs.baud} baud` : "?",
  };
}
