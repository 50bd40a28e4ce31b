/**
 * Authentication of every agent session (SSH exec channel, serial link session, local or emulated child): a mutual
 * challenge–response over the device secret that `qat device setup` created (32 random bytes, in the host's
 * registry and in the agent's home as auth.key, both mode 0600). The secret never travels:
 *
 *   host → board   auth.hello  { nonce: Nh }                 (32 fresh random bytes, hex)
 *   board → host   ok          { nonce: Nb, proof: Pb }      Pb = HMAC-SHA256(secret, "board" label, Nh, Nb, params)
 *   host → board   auth.prove  { proof: Ph }                 Ph = HMAC-SHA256(secret, "host" label, Nh, Nb, params)
 *
 * Both nonces are fresh per session, so a recorded handshake replayed later fails (the board's new Nb changes the
 * proof it expects); the direction label keeps a board's proof from being reflected back as the host's; the
 * session parameters (protocol and agent version) are covered so a downgrade shows. Until the host has proved
 * itself every other frame is refused with `unauthenticated` and counted (the count goes to the agent's log), and
 * a wrong proof ends the session.
 *
 * Board-side code: Node built-ins only; installed beside the agent as auth.mjs.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import type { Header } from "./framing.js";
import { AGENT_VERSION, type ErrorHeader, PROTOCOL_VERSION } from "./protocol.js";

export const SECRET_BYTES = 32;
export const NONCE_BYTES = 32;
/** The device secret in the agent's home. */
export const SECRET_FILE = "auth.key";
/** After this many refused frames an unauthenticated session is closed (a peer that is not the owner). */
export const MAX_REFUSED = 64;

/** What both proofs cover besides the nonces. */
export interface AuthParams {
  protocol: number;
  agentVersion: string;
}

/** One side's proof: HMAC-SHA256 over a direction label, both nonces and the session parameters. */
export function authProof(
  secret: Uint8Array,
  who: "board" | "host",
  hostNonce: Uint8Array,
  boardNonce: Uint8Array,
  p: AuthParams,
): Buffer {
  return createHmac("sha256", secret)
    .update(`qat-agent-auth v1 ${who} proof\0`)
    .update(hostNonce)
    .update(boardNonce)
    .update(`\0protocol ${p.protocol}\0agent ${p.agentVersion}`)
    .digest();
}

/** Constant-time comparison of an expected proof with one that arrived as hex. */
export function proofMatches(expected: Uint8Array, got: unknown): boolean {
  if (typeof got !== "string" || !/^[0-9a-f]+$/.test(got) || got.length !== expected.length * 2) return false;
  return timingSafeEqual(Buffer.from(got, "hex"), expected);
}

/** A nonce that arrived as hex, or null when it is not NONCE_BYTES of hex. */
export function parseNonce(v: unknown): Buffer | null {
  return typeof v === "string" && /^[0-9a-f]+$/.test(v) && v.length === NONCE_BYTES * 2
    ? Buffer.from(v, "hex")
    : null;
}

/** The device secret in `home`, or null when there is none (a board set up before authentication existed). */
export function readSecret(home: string): Buffer | null {
  let b: Buffer;
  try {
    b = fs.readFileSync(join(home, SECRET_FILE));
  } catch {
    return null;
  }
  return b.length === SECRET_BYTES ? b : null;
}

/** A fresh device secret (setup). */
export function newSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

/** The gate's answer: a reply (none for put.chunk, which never gets one), and whether the session ends. */
type GateAnswer = { header?: Header; end?: boolean };

/**
 * The board's side of one session's handshake: answers auth.hello and auth.prove, refuses (and counts) everything
 * else until the host has proved it holds the secret. The secret is read from the home per session, so a re-key
 * by `qat device setup` needs no restart.
 */
export class SessionGate {
  authenticated = false;
  /** Frames refused because they came before the handshake completed. */
  refused = 0;
  private nonces?: { host: Buffer; board: Buffer };
  private readonly params: AuthParams = { protocol: PROTOCOL_VERSION, agentVersion: AGENT_VERSION };

  constructor(
    private readonly home: string,
    private readonly log: (message: string) => void,
  ) {}

  /** The answer to a frame that arrived before authentication. */
  answer(h: Header): GateAnswer {
    const id = typeof h.id === "number" ? h.id : undefined;
    const fail = (code: string, message: string, end = false): GateAnswer => {
      const e: ErrorHeader = { t: "error", ...(id === undefined ? {} : { id }), code, message };
      return { header: { ...e }, end };
    };
    if (h.t === "auth.hello") {
      const secret = readSecret(this.home);
      if (!secret) {
        return fail(
          "no-device-secret",
          "this board has no device secret (it was set up before agent sessions were authenticated)",
          true,
        );
      }
      const host = parseNonce(h.nonce);
      if (!host) return fail("bad-request", `auth.hello needs a ${NONCE_BYTES}-byte nonce in hex`, true);
      const board = randomBytes(NONCE_BYTES);
      this.nonces = { host, board };
      const proof = authProof(secret, "board", host, board, this.params);
      return {
        header: { t: "ok", id, ...this.params, nonce: board.toString("hex"), proof: proof.toString("hex") },
      };
    }
    if (h.t === "auth.prove" && this.nonces) {
      const { host, board } = this.nonces;
      this.nonces = undefined; // one proof per challenge
      const secret = readSecret(this.home);
      if (secret && proofMatches(authProof(secret, "host", host, board, this.params), h.proof)) {
        this.authenticated = true;
        return { header: { t: "ok", id, refused: this.refused } };
      }
      this.log(`authentication failed: the host's proof does not match this board's device secret`);
      return fail("auth-failed", "the host's proof does not match this board's device secret", true);
    }
    this.refused++;
    this.log(
      `refused '${String(h.t).slice(0, 40)}' before authentication (${this.refused} refused in this session)`,
    );
    if (h.t === "put.chunk") return { end: this.refused >= MAX_REFUSED }; // refused without a reply, as it gets none
    return fail(
      "unauthenticated",
      `'${String(h.t).slice(0, 40)}' refused: this session has not authenticated (auth.hello, auth.prove first)`,
      this.refused >= MAX_REFUSED,
    );
  }
}
