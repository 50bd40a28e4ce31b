/**
 * The serial link layer: a reliable, ordered byte stream (one per session) over a noisy byte line (a UART, a USB
 * serial gadget, a pty). It sits under the agent protocol: the host's AgentClient and the board's `serve()` see
 * the same byte stream an SSH channel or a child process gives them.
 *
 * Frames are COBS-encoded and end with a 0x00 delimiter, so a receiver finds the next frame after any garbage.
 * Before encoding, a frame is:
 *
 *   type u8 | flags u8 | session u32 BE | seq u48 BE | ack u48 BE | body | CRC-32 (IEEE) u32 BE of all before it
 *
 * - HELLO / HELLO_ACK carry protocol versions, capabilities, maximum frame body, window and line rate, and
 *   authenticate the session with the device secret (handshake.ts). The host picks a random session id; the board
 *   answers with its nonce and proof, and the new session replaces the board's previous one only when the host's
 *   first frame carries a valid tag under the session's key. Every session frame (DATA, ACK, RST) is tagged.
 * - DATA carries stream bytes; `seq` is the stream offset of its first byte (like TCP), so a retransmission can be
 *   cut into other frame sizes. FIN (flag) ends a direction and takes one offset. `ack` is the next offset wanted
 *   from the peer (cumulative), carried by every frame.
 * - ACK carries only `ack` (also sent as a keepalive when the line is idle); RST drops the session at once.
 *
 * Reliability: a sliding window of unacknowledged bytes, retransmission from the first unacknowledged offset on
 * timeout (RTO from measured round trips, Karn's rule, exponential backoff) or after two duplicate ACKs; frames
 * shrink (halve) after losses and grow back after clean runs, so a noisy line still gets frames through. A session
 * that hears nothing from its peer for `deadAfterMs` is dead; both ends keep the line busy with keepalives.
 *
 * The pieces: frames.ts (COBS, CRC-32, the frame layout), handshake.ts (HELLO), session.ts (one stream with its
 * retransmissions), this module (one end of a line, routing frames to its session), tty.ts (a real tty).
 *
 * Board-side code: Node built-ins only; installed beside the agent as serial-link.mjs.
 */
import { randomBytes } from "node:crypto";
import { encodeLinkFrame, FrameType, HEADER, LinkDecoder, MAX_FRAME_LIMIT, type RawFrame } from "./frames.js";
import {
  HELLO_PARAMS,
  helloBody,
  LINK_NONCE,
  LINK_PROOF,
  linkProof,
  negotiate,
  openFrame,
  parseHello,
  sameProof,
  sessionKey,
} from "./handshake.js";
import {
  type ByteLine,
  emptyStats,
  type LinkOptions,
  type LinkStats,
  type Negotiated,
  withDefaults,
} from "./options.js";
import { LinkSession } from "./session.js";

/** Why a link handshake failed: `code` says what the host can do (no secret, wrong secret, refused). */
export class LinkHandshakeError extends Error {
  constructor(
    readonly code: "no-device-secret" | "link-auth-failed" | "link-refused" | "link-timeout",
    message: string,
  ) {
    super(message);
  }
}

/** The device secret: fixed on the host, read per handshake on the board (a re-key needs no restart). */
export type SecretSource = () => Uint8Array | null;

/** A board's answer to one HELLO: kept until the host proves the secret with its first tagged frame. */
interface Pending {
  id: number;
  negotiated: Negotiated;
  key: Buffer;
  ack: Buffer;
}

/** One end of a line: the host connects sessions, the board accepts them. Routes frames to the session. */
export class Link {
  readonly stats: LinkStats = emptyStats();
  private readonly opts: Required<LinkOptions>;
  private readonly decoder: LinkDecoder;
  private session?: LinkSession;
  /** Board: the HELLO_ACK of the current session (answered again when the host repeats its HELLO). */
  private currentAck?: Buffer;
  private pending?: Pending;
  private hello?: {
    id: number;
    nonce: Buffer;
    params: Buffer;
    resolve: (r: { n: Negotiated; key: Buffer }) => void;
    reject: (e: Error) => void;
  };
  private onAccept?: (s: LinkSession) => void;

  constructor(
    private readonly line: ByteLine,
    /** The device secret (the board's auth.key; the host's from its registry). */
    private readonly secret: SecretSource,
    opts: LinkOptions = {},
    /** This end, for logs. */
    readonly name = "qat",
  ) {
    this.opts = withDefaults(opts);
    this.decoder = new LinkDecoder(2 * (HEADER + MAX_FRAME_LIMIT + 4) + 64);
    line.onData((b) => this.onBytes(b));
  }

  /** The options in force (defaults filled in). */
  get options(): Required<LinkOptions> {
    return this.opts;
  }

  get current(): LinkSession | undefined {
    return this.session;
  }

  /**
   * Board side: call `accept` for every new session a host opens. A new session replaces the one before only
   * once its host has proved the secret (its first tagged frame), so a peer without it cannot take one over.
   */
  listen(accept: (s: LinkSession) => void): void {
    this.onAccept = accept;
  }

  /** Host side: open a session (handshake with retries). Rejects when nobody answers in helloTimeoutMs. */
  async connect(): Promise<LinkSession> {
    this.session?.reset("replaced");
    const secret = this.secret();
    if (!secret) {
      throw new LinkHandshakeError("no-device-secret", "this host has no device secret for the board");
    }
    let id = 0;
    while (id === 0) id = (Math.random() * 0x100000000) >>> 0;
    const nonce = randomBytes(LINK_NONCE);
    const body = helloBody(this.opts, undefined, undefined, nonce);
    const send = (): void => {
      const wire = encodeLinkFrame({ type: FrameType.Hello, flags: 0, session: id, seq: 0, ack: 0, body });
      this.stats.wireBytesSent += wire.length;
      this.line.write(wire);
    };
    const { n, key } = await new Promise<{ n: Negotiated; key: Buffer }>((resolve, reject) => {
      const every = setInterval(send, 250);
      const timer = setTimeout(() => {
        this.hello?.reject(
          new LinkHandshakeError(
            "link-timeout",
            `no answer to the link handshake within ${this.opts.helloTimeoutMs} ms`,
          ),
        );
      }, this.opts.helloTimeoutMs);
      const done = (): void => {
        clearInterval(every);
        clearTimeout(timer);
        this.hello = undefined;
      };
      this.hello = {
        id,
        nonce,
        params: body.subarray(0, HELLO_PARAMS),
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      send();
    });
    const s = new LinkSession(this.line, id, n, this.opts, this.stats, { key, role: "host" });
    this.session = s;
    return s;
  }

  /** Stop answering; ends the current session. */
  shutdown(): void {
    this.session?.reset("killed");
    this.hello?.reject(new LinkHandshakeError("link-refused", "link shut down"));
  }

  private onBytes(b: Buffer): void {
    this.stats.wireBytesReceived += b.length;
    const before = this.decoder.bad;
    const frames = this.decoder.push(b);
    this.stats.badFrames += this.decoder.bad - before;
    for (const f of frames) this.onFrame(f);
  }

  private onFrame(f: RawFrame): void {
    if (f.type === FrameType.Hello) {
      this.onHello(f);
      return;
    }
    if (f.type === FrameType.HelloAck) {
      this.onHelloAck(f);
      return;
    }
    if (f.type === FrameType.Rst && this.hello && f.session === this.hello.id && f.body.length) {
      // a refusal of our HELLO: before any key exists, so it proves nothing (at worst a peer stops us connecting)
      let why = "the board refused the link handshake";
      let code: LinkHandshakeError["code"] = "link-refused";
      try {
        const r = JSON.parse(f.body.toString("utf8")) as { error?: string; code?: string };
        why = String(r.error ?? why);
        if (r.code === "no-device-secret") code = "no-device-secret";
      } catch {
        // keep the generic reason
      }
      this.hello.reject(new LinkHandshakeError(code, why));
      return;
    }
    const p = this.pending;
    if (p && f.session === p.id) {
      const g = openFrame(p.key, "host", f);
      if (!g) {
        this.stats.forged++;
        return;
      }
      const opened = new LinkSession(this.line, p.id, p.negotiated, this.opts, this.stats, {
        key: p.key,
        role: "board",
      });
      // the host proved it holds the secret: its session replaces the current one
      this.pending = undefined;
      this.session?.close("replaced");
      this.session = opened;
      this.currentAck = p.ack;
      this.onAccept?.(opened);
      opened.receive(g);
      return;
    }
    if (this.session && f.session === this.session.id) {
      const g = this.session.open(f);
      if (g) this.session.receive(g);
      else this.stats.forged++;
      return;
    }
    // a frame of no session this end knows
    this.stats.forged++;
  }

  /** Board: answer a HELLO with nonce and proof; the session starts when the host's first tagged frame arrives. */
  private onHello(f: RawFrame): void {
    if (!this.onAccept) return; // the host ignores HELLOs
    const [type, body] = this.helloAnswer(f);
    this.write(type, f.session, body);
  }

  /** The board's answer to a HELLO: HELLO_ACK (nonce and proof), or RST saying why not. */
  private helloAnswer(f: RawFrame): [FrameType, Buffer] {
    const refuse = (code: string, error: string): [FrameType, Buffer] => [
      FrameType.Rst,
      Buffer.from(JSON.stringify({ code, error })),
    ];
    const theirs = parseHello(f.body);
    if (!theirs || theirs.rest.length !== LINK_NONCE) {
      return refuse("link-refused", "the HELLO carries no nonce: the host's qat is older than this agent");
    }
    const n = negotiate(this.opts, theirs);
    if (typeof n === "string") return refuse("link-refused", n);
    // the host repeats its HELLO until an answer arrives: the same answer again
    if (this.session && !this.session.isClosed && this.session.id === f.session && this.currentAck) {
      return [FrameType.HelloAck, this.currentAck];
    }
    if (this.pending?.id === f.session) return [FrameType.HelloAck, this.pending.ack];
    const secret = this.secret();
    if (!secret) {
      return refuse(
        "no-device-secret",
        "this board has no device secret (it was set up before sessions were authenticated)",
      );
    }
    if (this.pending) this.stats.unprovenHellos++;
    const nonce = randomBytes(LINK_NONCE);
    const params = helloBody({ ...n, baud: this.opts.baud }, [n.version], n.capabilities);
    const proof = linkProof(secret, f.session, theirs.rest, nonce, f.body.subarray(0, HELLO_PARAMS), params);
    const ack = Buffer.concat([params, nonce, proof]);
    const key = sessionKey(secret, f.session, theirs.rest, nonce);
    this.pending = { id: f.session, negotiated: n, key, ack };
    return [FrameType.HelloAck, ack];
  }

  /** Host: check the board's proof before the session exists. */
  private onHelloAck(f: RawFrame): void {
    const h = this.hello;
    if (!h || f.session !== h.id) return;
    const theirs = parseHello(f.body);
    if (!theirs) return;
    const n = negotiate(this.opts, theirs);
    if (typeof n === "string") {
      h.reject(new LinkHandshakeError("link-refused", n));
      return;
    }
    const secret = this.secret();
    const nonce = theirs.rest.subarray(0, LINK_NONCE);
    const proof = theirs.rest.subarray(LINK_NONCE);
    const params = f.body.subarray(0, HELLO_PARAMS);
    if (
      !secret ||
      theirs.rest.length !== LINK_NONCE + LINK_PROOF ||
      !sameProof(proof, linkProof(secret, h.id, h.nonce, nonce, h.params, params))
    ) {
      h.reject(
        new LinkHandshakeError(
          "link-auth-failed",
          "the board could not prove it holds this device's secret (a wrong device secret, or another board on the line)",
        ),
      );
      return;
    }
    h.resolve({ n, key: sessionKey(secret, h.id, h.nonce, nonce) });
  }

  private write(type: FrameType, session: number, body: Buffer): void {
    const wire = encodeLinkFrame({ type, flags: 0, session, seq: 0, ack: 0, body });
    this.stats.wireBytesSent += wire.length;
    this.line.write(wire);
  }
}
