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
 * - HELLO / HELLO_ACK carry protocol versions, capabilities, maximum frame body, window and line rate (handshake.ts).
 *   The host picks a random session id; the board answers, and a HELLO with a new id ends the board's previous
 *   session.
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
import { encodeLinkFrame, FrameType, HEADER, LinkDecoder, MAX_FRAME_LIMIT, type RawFrame } from "./frames.js";
import { helloBody, negotiate, parseHello } from "./handshake.js";
import {
  type ByteLine,
  emptyStats,
  type LinkOptions,
  type LinkStats,
  type Negotiated,
  withDefaults,
} from "./options.js";
import { LinkSession } from "./session.js";

/** One end of a line: the host connects sessions, the board accepts them. Routes frames to the session. */
export class Link {
  readonly stats: LinkStats = emptyStats();
  private readonly opts: Required<LinkOptions>;
  private readonly decoder: LinkDecoder;
  private session?: LinkSession;
  private hello?: { id: number; resolve: (n: Negotiated) => void; reject: (e: Error) => void };
  private onAccept?: (s: LinkSession) => void;

  constructor(
    private readonly line: ByteLine,
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

  /** Board side: call `accept` for every new session a host opens (a new one ends the one before). */
  listen(accept: (s: LinkSession) => void): void {
    this.onAccept = accept;
  }

  /** Host side: open a session (handshake with retries). Rejects when nobody answers in helloTimeoutMs. */
  async connect(): Promise<LinkSession> {
    this.session?.reset("replaced");
    let id = 0;
    while (id === 0) id = (Math.random() * 0x100000000) >>> 0;
    const body = helloBody(this.opts);
    const send = (): void => {
      const wire = encodeLinkFrame({ type: FrameType.Hello, flags: 0, session: id, seq: 0, ack: 0, body });
      this.stats.wireBytesSent += wire.length;
      this.line.write(wire);
    };
    const negotiated = await new Promise<Negotiated>((resolve, reject) => {
      const every = setInterval(send, 250);
      const timer = setTimeout(() => {
        this.hello?.reject(
          new Error(`no answer to the link handshake within ${this.opts.helloTimeoutMs} ms`),
        );
      }, this.opts.helloTimeoutMs);
      const done = (): void => {
        clearInterval(every);
        clearTimeout(timer);
        this.hello = undefined;
      };
      this.hello = {
        id,
        resolve: (n) => {
          done();
          resolve(n);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      send();
    });
    const s = new LinkSession(this.line, id, negotiated, this.opts, this.stats);
    this.session = s;
    return s;
  }

  /** Stop answering; ends the current session. */
  shutdown(): void {
    this.session?.reset("killed");
    this.hello?.reject(new Error("link shut down"));
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
      if (!this.onAccept) return; // the host ignores HELLOs
      const theirs = parseHello(f.body);
      if (!theirs) return;
      const n = negotiate(this.opts, theirs);
      if (typeof n === "string") {
        this.write(FrameType.Rst, f.session, Buffer.from(JSON.stringify({ error: n })));
        return;
      }
      if (this.session?.id !== f.session) {
        this.session?.close("replaced");
        const s = new LinkSession(this.line, f.session, n, this.opts, this.stats);
        this.session = s;
        this.onAccept(s);
      }
      this.write(
        FrameType.HelloAck,
        f.session,
        helloBody({ ...n, baud: this.opts.baud }, [n.version], n.capabilities),
      );
      return;
    }
    if (f.type === FrameType.HelloAck) {
      if (!this.hello || f.session !== this.hello.id) return;
      const theirs = parseHello(f.body);
      if (!theirs) return;
      const n = negotiate(this.opts, theirs);
      if (typeof n === "string") this.hello.reject(new Error(n));
      else this.hello.resolve(n);
      return;
    }
    if (f.type === FrameType.Rst && this.hello && f.session === this.hello.id && f.body.length) {
      let why = "the board refused the link handshake";
      try {
        why = String((JSON.parse(f.body.toString("utf8")) as { error?: string }).error ?? why);
      } catch {
        // keep the generic reason
      }
      this.hello.reject(new Error(why));
      return;
    }
    if (this.session && f.session === this.session.id) this.session.receive(f);
  }

  private write(type: FrameType, session: number, body: Buffer): void {
    const wire = encodeLinkFrame({ type, flags: 0, session, seq: 0, ack: 0, body });
    this.stats.wireBytesSent += wire.length;
    this.line.write(wire);
  }
}
