/**
 * The link handshake: HELLO / HELLO_ACK carry protocol versions, capabilities, maximum frame body, window and line
 * rate; each end takes the smaller of both sides' frame and window.
 *
 * It also authenticates the session with the device secret (the agent's auth.key): the HELLO carries the host's
 * fresh nonce, the HELLO_ACK the board's nonce and its proof (HMAC-SHA256 over a direction label, the session id,
 * both nonces and both parameter blocks). Both ends derive a per-session MAC key from the secret and the nonces,
 * and every later frame of the session carries an 8-byte tag under it (`sealFrame` / `openFrame`): a peer on the
 * line without the secret can neither open a session nor inject, reset or take over one. The host proves itself
 * with its first tagged frame; until then the board keeps its current session.
 *
 * Board-side code: Node built-ins only; installed beside the agent as serial-handshake.mjs.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { MIN_FRAME, type RawFrame } from "./frames.js";
import type { LinkOptions, Negotiated } from "./options.js";

export const LINK_VERSION = 2;
/**
 * Bytes of a nonce in HELLO / HELLO_ACK, of a proof, and of the tag every session frame carries. The tag is
 * HMAC-SHA256 cut to 64 bits: a forgery has to be tried on the line, which carries at most ~10^4 frames a second
 * (2^64 tries would take ~6·10^7 years), and on a noisy line every byte of a 54-byte minimum frame costs (a
 * 16-byte tag made the 1%-noise transfer of serial-faults.test.ts markedly slower).
 */
export const LINK_NONCE = 32;
export const LINK_PROOF = 32;
export const LINK_TAG = 8;
/** The parameter block at the start of HELLO / HELLO_ACK bodies. */
export const HELLO_PARAMS = 13;
export const LINK_CAPABILITIES = ["cobs", "crc32", "adaptive-frames", "fast-retransmit", "keepalive"];

export interface HelloBody {
  versions: number[];
  capabilities: string[];
  maxFrame: number;
  window: number;
  baud: number;
  /** What follows the parameters: the nonce (HELLO), nonce + proof (HELLO_ACK). */
  rest: Buffer;
}

/**
 * HELLO / HELLO_ACK body, binary and short (a noisy line must get it through): versions bitmap u8 (bit v-1),
 * capabilities bitmap u16 (over LINK_CAPABILITIES), maxFrame u16, window u32, baud u32.
 */
export function helloBody(
  o: { maxFrame: number; window: number; baud: number },
  versions = [LINK_VERSION],
  caps = LINK_CAPABILITIES,
  rest: Uint8Array = new Uint8Array(0),
): Buffer {
  const b = Buffer.alloc(HELLO_PARAMS + rest.length);
  b.set(rest, HELLO_PARAMS);
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
  if (body.length < HELLO_PARAMS) return null;
  const versions: number[] = [];
  for (let v = 1; v <= 8; v++) if (body[0]! & (1 << (v - 1))) versions.push(v);
  const mask = body.readUInt16BE(1);
  return {
    versions,
    capabilities: LINK_CAPABILITIES.filter((_, i) => mask & (1 << i)),
    maxFrame: body.readUInt16BE(3),
    window: body.readUInt32BE(5),
    baud: body.readUInt32BE(9),
    rest: body.subarray(HELLO_PARAMS),
  };
}

/** HMAC-SHA256 under the device secret over a label, the session id and the given parts. */
function sessionHmac(secret: Uint8Array, label: string, session: number, parts: Uint8Array[]): Buffer {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(session >>> 0);
  const h = createHmac("sha256", secret).update(`qat-link v2 ${label}\0`).update(id);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The board's proof in HELLO_ACK: it holds the secret, for this session id, these nonces and parameters. */
export function linkProof(
  secret: Uint8Array,
  session: number,
  hostNonce: Uint8Array,
  boardNonce: Uint8Array,
  hostParams: Uint8Array,
  boardParams: Uint8Array,
): Buffer {
  return sessionHmac(secret, "board proof", session, [hostNonce, boardNonce, hostParams, boardParams]);
}

/** The per-session MAC key: never sent, derived on both ends from the secret and both nonces. */
export function sessionKey(
  secret: Uint8Array,
  session: number,
  hostNonce: Uint8Array,
  boardNonce: Uint8Array,
): Buffer {
  return sessionHmac(secret, "session key", session, [hostNonce, boardNonce]);
}

export type LinkRole = "host" | "board";

function frameTag(key: Uint8Array, from: LinkRole, f: RawFrame, body: Uint8Array): Buffer {
  const head = Buffer.alloc(14);
  head[0] = f.type;
  head[1] = f.flags;
  head.writeUIntBE(f.seq, 2, 6);
  head.writeUIntBE(f.ack, 8, 6);
  return createHmac("sha256", key)
    .update(from === "host" ? "qat-link v2 host frame\0" : "qat-link v2 board frame\0")
    .update(head)
    .update(body)
    .digest()
    .subarray(0, LINK_TAG);
}

/** A session frame's body with its tag appended (the session id is in the key). */
export function sealFrame(key: Uint8Array, from: LinkRole, f: RawFrame): RawFrame {
  return { ...f, body: Buffer.concat([f.body, frameTag(key, from, f, f.body)]) };
}

/** The frame without its tag when the tag is right; null when it is missing or forged. */
export function openFrame(key: Uint8Array, from: LinkRole, f: RawFrame): RawFrame | null {
  if (f.body.length < LINK_TAG) return null;
  const body = f.body.subarray(0, f.body.length - LINK_TAG);
  const want = frameTag(key, from, f, body);
  if (!timingSafeEqual(want, f.body.subarray(f.body.length - LINK_TAG))) return null;
  return { ...f, body };
}

/** Constant-time equality of two proofs. */
export function sameProof(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
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
