/**
 * One link session: a reliable, ordered byte stream in each direction over the line.
 *
 * - DATA carries stream bytes; `seq` is the stream offset of its first byte (like TCP), so a retransmission can be
 *   cut into other frame sizes. FIN (flag) ends a direction and takes one offset. `ack` is the next offset wanted
 *   from the peer (cumulative), carried by every frame.
 * - ACK carries only `ack` (also sent as a keepalive when the line is idle), and up to 4 ranges received beyond it;
 *   RST drops the session at once.
 *
 * Reliability: a sliding window of unacknowledged bytes, retransmission from the first unacknowledged offset on
 * timeout (RTO from measured round trips, Karn's rule, exponential backoff) or after two duplicate ACKs; frames
 * shrink (halve) after losses and grow back after clean runs, so a noisy line still gets frames through. A session
 * that hears nothing from its peer for `deadAfterMs` is dead; both ends keep the line busy with keepalives.
 *
 * Board-side code: Node built-ins only; installed beside the agent as serial-session.mjs.
 */
import { EventEmitter } from "node:events";
import { Readable, Writable } from "node:stream";
import { encodeLinkFrame, FLAG_FIN, FrameType, MIN_FRAME, type RawFrame } from "./frames.js";
import { type LinkRole, openFrame, sealFrame } from "./handshake.js";
import type { ByteLine, LinkOptions, LinkStats, Negotiated } from "./options.js";

interface Segment {
  seq: number;
  body: Buffer;
  fin: boolean;
  /** performance.now() of the last transmission. */
  sentAt: number;
  tries: number;
}

export type CloseReason = "clean" | "dead" | "reset" | "replaced" | "killed";

/** One reliable byte stream in each direction between host and board. */
export class LinkSession extends EventEmitter {
  readonly readable: Readable;
  readonly writable: Writable;
  /** Resolves when the session is over. */
  readonly closed: Promise<CloseReason>;
  private resolveClosed!: (r: CloseReason) => void;
  isClosed = false;
  closeReason?: CloseReason;

  // sender: bytes not yet in a frame (chunks), and frames sent but not acknowledged (segs, by offset)
  private chunks: Buffer[] = [];
  private chunksBase = 0; // stream offset of chunks[0][0]
  private queued = 0; // stream offset just past the last queued byte
  private sndNxt = 0; // next offset to put in a new frame
  private sndUna = 0;
  private segs: Segment[] = [];
  private inflight = 0;
  private finQueued = false;
  private finSent = false;
  private finAcked = false;
  private frame: number;
  private cwnd: number;
  private cleanRun = 0;
  private srtt = 0;
  private rttvar = 0;
  private rto: number;
  private readonly perByteMs: number;
  private readonly keepaliveMs: number;
  private timer?: NodeJS.Timeout;
  private keepalive?: NodeJS.Timeout;
  private lastSent = Date.now();
  private lastHeard = Date.now();
  private spaceWaiters: (() => void)[] = [];
  // receiver
  private rcvNxt = 0;
  /** Frames that arrived beyond a hole, kept until it is filled; `oooBytes` is what they hold (see `held`). */
  private ooo = new Map<number, { body: Buffer; fin: boolean }>();
  private oooBytes = 0;
  private peerFin = false;
  private ackQueued = false;

  constructor(
    private readonly line: ByteLine,
    readonly id: number,
    readonly negotiated: Negotiated,
    private readonly opts: Required<LinkOptions>,
    readonly stats: LinkStats,
    /** The session's MAC key (handshake.ts) and this end's role: every frame sent is tagged, every one received checked. */
    private readonly auth: { key: Uint8Array; role: LinkRole },
  ) {
    super();
    this.closed = new Promise((res) => {
      this.resolveClosed = res;
    });
    this.frame = negotiated.maxFrame;
    this.cwnd = negotiated.window;
    // a frame takes (body + framing) × 10 bits on the line: the timeout never undercuts sending a full window
    this.perByteMs = opts.baud > 0 ? 10_000 / opts.baud : 0;
    this.rto = Math.max(this.rtoFloor(), 300);
    const highWaterMark = Math.max(negotiated.window * 2, 64 * 1024);
    this.readable = new Readable({ read: () => {} });
    this.writable = new Writable({
      highWaterMark,
      write: (chunk: Buffer, _enc, cb) => {
        if (this.isClosed) return cb(); // a dead session swallows writes; `closed` says why
        this.send(chunk);
        if (this.queued - this.sndUna < highWaterMark) cb();
        else this.spaceWaiters.push(() => cb());
      },
      final: (cb) => {
        this.end();
        cb();
      },
    });
    // keepalives often enough that a noisy line still gets several through before the peer's dead time
    this.keepaliveMs = Math.max(20, Math.min(opts.keepaliveMs, opts.deadAfterMs / 8));
    this.keepalive = setInterval(() => this.tick(), Math.max(10, this.keepaliveMs / 2));
    this.keepalive.unref?.();
  }

  /** Queue stream bytes. */
  send(bytes: Buffer): void {
    if (this.isClosed || this.finQueued || bytes.length === 0) return;
    this.chunks.push(Buffer.from(bytes));
    this.queued += bytes.length;
    this.pump();
  }

  /** End our direction (FIN) once everything queued is through. */
  end(): void {
    if (this.isClosed || this.finQueued) return;
    this.finQueued = true;
    this.pump();
  }

  /** Drop the session at once and tell the peer (RST). */
  reset(reason: CloseReason = "killed"): void {
    if (this.isClosed) return;
    this.emitFrame(FrameType.Rst, 0, this.sndNxt, Buffer.alloc(0));
    this.close(reason);
  }

  close(reason: CloseReason): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    clearInterval(this.timer);
    clearInterval(this.keepalive);
    for (const w of this.spaceWaiters.splice(0)) w();
    if (!this.peerFin) this.readable.push(null);
    this.resolveClosed(reason);
    this.emit("close", reason);
  }

  /** Take the next n queued bytes out of the chunks. */
  private take(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0 && this.chunks.length) {
      const c = this.chunks[0]!;
      if (c.length <= need) {
        parts.push(c);
        this.chunks.shift();
        need -= c.length;
      } else {
        parts.push(c.subarray(0, need));
        this.chunks[0] = c.subarray(need);
        need = 0;
      }
    }
    this.chunksBase += n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** A frame of this session as the peer sent it, without its tag; null when the tag is missing or forged. */
  open(f: RawFrame): RawFrame | null {
    return openFrame(this.auth.key, this.auth.role === "host" ? "board" : "host", f);
  }

  private emitFrame(type: FrameType, flags: number, seq: number, body: Buffer): void {
    const frame = { type, flags, session: this.id, seq, ack: this.rcvNxt, body };
    const wire = encodeLinkFrame(sealFrame(this.auth.key, this.auth.role, frame));
    this.stats.wireBytesSent += wire.length;
    this.lastSent = Date.now();
    if (type === FrameType.Data || type === FrameType.Ack) this.ackQueued = false;
    this.line.write(wire);
  }

  /** An ACK: cumulative in the header, and up to 4 ranges received beyond it (SACK) in the body. */
  private sendAck(): void {
    const ranges = this.sackRanges();
    const body = Buffer.alloc(1 + 12 * ranges.length);
    body[0] = ranges.length;
    ranges.forEach(([a, b], i) => {
      body.writeUIntBE(a, 1 + 12 * i, 6);
      body.writeUIntBE(b, 7 + 12 * i, 6);
    });
    this.emitFrame(FrameType.Ack, 0, this.sndNxt, body);
  }

  private sackRanges(): [number, number][] {
    const keys = [...this.ooo.keys()].sort((a, b) => a - b);
    const out: [number, number][] = [];
    for (const k of keys) {
      const seg = this.ooo.get(k)!;
      const end = k + seg.body.length + (seg.fin ? 1 : 0);
      const last = out.at(-1);
      if (last && k <= last[1]) last[1] = Math.max(last[1], end);
      else out.push([k, end]);
    }
    return out.slice(0, 4);
  }

  /** The timeout never undercuts sending what may be queued ahead on the line (10 bits a byte), twice. */
  private rtoFloor(): number {
    const ahead = this.inflight + 2 * (this.frame + 32);
    return Math.max(40, Math.ceil(40 + 1.5 * this.perByteMs * ahead));
  }

  private pump(): void {
    if (this.isClosed) return;
    const limit = Math.min(this.negotiated.window, this.cwnd);
    while (this.sndNxt < this.queued && this.inflight < limit) {
      const n = Math.min(this.frame, this.queued - this.sndNxt, limit - this.inflight);
      const seg: Segment = { seq: this.sndNxt, body: this.take(n), fin: false, sentAt: 0, tries: 0 };
      this.sndNxt += n;
      this.segs.push(seg);
      this.inflight += n;
      this.transmit(seg);
    }
    if (this.finQueued && !this.finSent && this.sndNxt === this.queued) {
      this.finSent = true;
      const seg: Segment = { seq: this.queued, body: Buffer.alloc(0), fin: true, sentAt: 0, tries: 0 };
      this.segs.push(seg);
      this.transmit(seg);
    }
    if (this.segs.length && !this.timer) {
      this.timer = setInterval(() => this.checkTimeouts(), 10);
      this.timer.unref?.();
    }
  }

  private transmit(seg: Segment): void {
    this.stats.framesSent++;
    if (seg.tries > 0) this.stats.retransmissions++;
    else this.stats.bytesSent += seg.body.length;
    seg.tries++;
    seg.sentAt = performance.now();
    this.emitFrame(FrameType.Data, seg.fin ? FLAG_FIN : 0, seg.seq, seg.body);
  }

  /** Resend a lost frame, cut into frames of the current (smaller) size. */
  private resend(i: number): number {
    const seg = this.segs[i]!;
    if (seg.body.length <= this.frame) {
      this.transmit(seg);
      return 1;
    }
    const parts: Segment[] = [];
    for (let off = 0; off < seg.body.length; off += this.frame) {
      parts.push({
        seq: seg.seq + off,
        body: seg.body.subarray(off, off + this.frame),
        fin: false,
        sentAt: 0,
        tries: seg.tries,
      });
    }
    this.segs.splice(i, 1, ...parts);
    for (const p of parts) this.transmit(p);
    return parts.length;
  }

  /** A loss: smaller frames and a smaller window for what follows. */
  private lost(): void {
    this.frame = Math.max(MIN_FRAME, this.frame >> 1);
    this.cwnd = Math.max(this.negotiated.window >> 2, 4 * this.frame, this.cwnd >> 1);
    this.cleanRun = 0;
  }

  private checkTimeouts(): void {
    if (this.isClosed) return;
    if (!this.segs.length) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = performance.now();
    let lostOne = false;
    for (let i = 0; i < this.segs.length; ) {
      const seg = this.segs[i]!;
      const wait = this.rto * 2 ** Math.min(seg.tries - 1, 3);
      if (now - seg.sentAt >= wait) {
        this.stats.timeouts++;
        if (!lostOne) this.lost();
        lostOne = true;
        i += this.resend(i);
      } else i++;
    }
  }

  private onAck(ack: number, sack: [number, number][] | null): void {
    if (ack <= this.sndUna && !sack?.length) return;
    if (ack > this.sndUna) this.sndUna = ack;
    const now = performance.now();
    let newest = -1;
    let removed = 0;
    const keep: Segment[] = [];
    for (const seg of this.segs) {
      const end = seg.seq + seg.body.length + (seg.fin ? 1 : 0);
      const done = end <= this.sndUna || (sack ?? []).some(([a, b]) => seg.seq >= a && end <= b);
      if (!done) {
        keep.push(seg);
        continue;
      }
      removed++;
      this.inflight -= seg.body.length;

      newest = Math.max(newest, seg.sentAt);
      if (seg.tries === 1) {
        // round-trip sample (Karn: never from a retransmitted frame)
        const r = now - seg.sentAt;
        if (this.srtt === 0) {
          this.srtt = r;
          this.rttvar = r / 2;
        } else {
          this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
          this.srtt = 0.875 * this.srtt + 0.125 * r;
        }
        this.rto = Math.min(Math.max(this.rtoFloor(), Math.ceil(this.srtt + 4 * this.rttvar)), 10_000);
      }
    }
    this.segs = keep;
    // our direction is done only when the cumulative ACK covers the FIN (a SACK of the FIN alone leaves holes)
    if (this.finSent && this.sndUna > this.queued) this.finAcked = true;
    if (removed) {
      this.cwnd = Math.min(this.negotiated.window, this.cwnd + this.frame);
      if (++this.cleanRun >= 16 && this.frame < this.negotiated.maxFrame) {
        this.frame = Math.min(this.negotiated.maxFrame, this.frame * 2);
        this.cleanRun = 0;
      }
      // a serial line keeps order: a frame sent before one that arrived, below what the peer reported, and not
      // acknowledged, was lost (above the reported ranges the peer may hold frames it had no room to mention)
      const reported = Math.max(this.sndUna, ...(sack ?? []).map(([, b]) => b));
      let lostOne = false;
      for (let i = 0; i < this.segs.length; ) {
        if (this.segs[i]!.sentAt < newest && this.segs[i]!.seq < reported) {
          this.stats.fastRetransmits++;
          if (!lostOne) this.lost();
          lostOne = true;
          i += this.resend(i);
        } else i++;
      }
      if (this.queued - this.sndUna < this.writable.writableHighWaterMark) {
        for (const w of this.spaceWaiters.splice(0)) w();
      }
      this.pump();
      this.maybeDone();
    }
  }

  private maybeDone(): void {
    if (this.finAcked && this.peerFin) {
      // let our last ACK out before the session goes
      setTimeout(() => this.close("clean"), 0);
    }
  }

  private deliver(seq: number, body: Buffer, fin: boolean): void {
    if (seq + body.length > this.rcvNxt) {
      const fresh = body.subarray(this.rcvNxt - seq);
      this.rcvNxt += fresh.length;
      this.stats.bytesReceived += fresh.length;
      this.readable.push(Buffer.from(fresh));
    }
    if (fin && !this.peerFin && seq + body.length === this.rcvNxt) {
      this.rcvNxt++;
      this.peerFin = true;
      this.readable.push(null);
    }
  }

  /** A frame of this session arrived. */
  receive(f: RawFrame): void {
    if (this.isClosed) {
      // the peer missed our last ACK of its FIN: answer once more
      if (f.type === FrameType.Data) this.emitFrame(FrameType.Ack, 0, this.sndNxt, Buffer.alloc(1));
      return;
    }
    this.lastHeard = Date.now();
    this.stats.framesReceived++;
    if (f.type === FrameType.Rst) {
      this.close("reset");
      return;
    }
    let sack: [number, number][] | null = null;
    if (f.type === FrameType.Data) {
      const fin = (f.flags & FLAG_FIN) !== 0;
      const end = f.seq + f.body.length + (fin ? 1 : 0);
      if (f.seq > this.rcvNxt) {
        this.stats.outOfOrder++;
        this.keepOutOfOrder(f.seq, f.body, fin, end);
        this.sendAck();
      } else if (end <= this.rcvNxt) {
        this.stats.duplicates++;
        this.sendAck();
      } else {
        this.deliver(f.seq, f.body, fin);
        // what arrived earlier beyond the hole may now follow
        for (let again = true; again; ) {
          again = false;
          for (const [k, seg] of this.ooo) {
            if (k <= this.rcvNxt) {
              this.ooo.delete(k);
              this.oooBytes -= held(seg.body);
              this.deliver(k, seg.body, seg.fin);
              again = true;
            }
          }
        }
        if (this.ooo.size) this.sendAck();
        else this.queueAck();
      }
    } else if (f.type === FrameType.Ack && f.body.length >= 1) {
      const n = Math.min(f.body[0]!, Math.floor((f.body.length - 1) / 12));
      sack = [];
      for (let i = 0; i < n; i++)
        sack.push([f.body.readUIntBE(1 + 12 * i, 6), f.body.readUIntBE(7 + 12 * i, 6)]);
    }
    this.onAck(f.ack, sack);
    if (this.peerFin) this.maybeDone();
  }

  /** Bytes held beyond a hole (at most `oooLimit`). */
  get outOfOrderBytes(): number {
    return this.oooBytes;
  }

  /**
   * What may be held beyond a hole, and how far ahead of it: a peer that keeps to the window has `window` bytes in
   * flight past what it knows we hold (SACKed bytes leave its count), and retransmissions cut into other sizes may
   * overlap what is held; 4 windows covers that. A peer sending far ahead, or the same range again and again at
   * shifted offsets, is dropped beyond it (a real sender retransmits what was dropped).
   */
  get oooLimit(): number {
    return 4 * this.negotiated.window;
  }

  /** Keep a frame that arrived beyond a hole, if it lies within the window and the held bytes stay bounded. */
  private keepOutOfOrder(seq: number, body: Buffer, fin: boolean, end: number): void {
    const within = end <= this.rcvNxt + this.oooLimit;
    if (!within || this.ooo.has(seq) || this.oooBytes + held(body) > this.oooLimit) {
      this.stats.oooDropped++;
      return;
    }
    this.ooo.set(seq, { body, fin });
    this.oooBytes += held(body);
  }

  private queueAck(): void {
    if (this.ackQueued) return;
    this.ackQueued = true;
    setImmediate(() => {
      // a DATA frame sent meanwhile carried the ACK
      if (this.ackQueued && !this.isClosed) this.sendAck();
    });
  }

  private tick(): void {
    if (this.isClosed) return;
    const now = Date.now();
    if (now - this.lastHeard > this.opts.deadAfterMs) {
      // silence after both streams are complete (the peer's FIN arrived, all our bytes were acknowledged) only
      // means the peer closed and the ACK of our FIN was lost: nothing is missing either way
      this.close(this.peerFin && this.sndUna >= this.queued ? "clean" : "dead");
      return;
    }
    if (now - this.lastSent >= this.keepaliveMs) this.sendAck();
  }
}

/**
 * What a frame held beyond a hole is charged: its body plus a fixed cost per entry, so empty or tiny frames at many
 * offsets cannot fill the map (and the sorting of SACK ranges) without bound either.
 */
function held(body: Buffer): number {
  return body.length + 64;
}
