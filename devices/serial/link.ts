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
 * - HELLO / HELLO_ACK carry JSON: protocol versions, capabilities, maximum frame body, window, line rate. The host
 *   picks a random session id; the board answers, and a HELLO with a new id ends the board's previous session.
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
 * Board-side code: this module uses Node built-ins only, and is installed beside the agent as serial-link.mjs.
 */
import { EventEmitter } from "node:events";
import { Readable, Writable } from "node:stream";
import * as zlib from "node:zlib";

export const LINK_VERSION = 1;
export const LINK_CAPABILITIES = ["cobs", "crc32", "adaptive-frames", "fast-retransmit", "keepalive"];
/** Largest frame body either side accepts. */
export const MAX_FRAME_LIMIT = 4096;
const MIN_FRAME = 32;
const HEADER = 18;

export const FrameType = { Hello: 1, HelloAck: 2, Data: 3, Ack: 4, Rst: 5 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
const FLAG_FIN = 1;

// ---------------------------------------------------------------------------------------------------------------
// CRC-32 and COBS

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

// ---------------------------------------------------------------------------------------------------------------
// The line and the session

/** A byte line: what the link writes to and reads from (a serial port, a pty, a test pipe). */
export interface ByteLine {
  write(bytes: Buffer): void;
  onData(listener: (bytes: Buffer) => void): void;
}

export interface LinkOptions {
  /** Largest frame body offered, bytes (default 1024; the smaller of both sides' is used). */
  maxFrame?: number;
  /** Unacknowledged bytes in flight, at most (default 16 KiB; the smaller of both sides' is used). */
  window?: number;
  /** The line rate in baud (8N1: 10 bits a byte); sets the smallest retransmission timeout. 0: unknown. */
  baud?: number;
  /** A session that hears nothing for this long is dead (default 10 s). */
  deadAfterMs?: number;
  /** Send a keepalive when nothing was sent for this long (default 200 ms: idle, ~1% of a 115200-baud line). */
  keepaliveMs?: number;
  /** Give up the handshake after this long (default 10 s). */
  helloTimeoutMs?: number;
}

export interface LinkStats {
  /** DATA frames sent, of them retransmitted, and the timeouts that caused retransmission. */
  framesSent: number;
  retransmissions: number;
  timeouts: number;
  fastRetransmits: number;
  framesReceived: number;
  /** Frames dropped for a bad CRC, bad COBS or no delimiter. */
  badFrames: number;
  /** DATA frames received out of order (a gap before them) or again. */
  outOfOrder: number;
  duplicates: number;
  /** Stream bytes delivered each way, and all bytes put on / taken off the line. */
  bytesSent: number;
  bytesReceived: number;
  wireBytesSent: number;
  wireBytesReceived: number;
}

export function emptyStats(): LinkStats {
  return {
    framesSent: 0,
    retransmissions: 0,
    timeouts: 0,
    fastRetransmits: 0,
    framesReceived: 0,
    badFrames: 0,
    outOfOrder: 0,
    duplicates: 0,
    bytesSent: 0,
    bytesReceived: 0,
    wireBytesSent: 0,
    wireBytesReceived: 0,
  };
}

export interface Negotiated {
  version: number;
  capabilities: string[];
  maxFrame: number;
  window: number;
  peer: string;
}

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
  /** Frames that arrived beyond a hole, kept until it is filled. */
  private ooo = new Map<number, { body: Buffer; fin: boolean }>();
  private peerFin = false;
  private ackQueued = false;

  constructor(
    private readonly line: ByteLine,
    readonly id: number,
    readonly negotiated: Negotiated,
    private readonly opts: Required<LinkOptions>,
    readonly stats: LinkStats,
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

  private emitFrame(type: FrameType, flags: number, seq: number, body: Buffer): void {
    const wire = encodeLinkFrame({ type, flags, session: this.id, seq, ack: this.rcvNxt, body });
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
        if (f.seq < this.rcvNxt + 4 * this.negotiated.window && !this.ooo.has(f.seq)) {
          this.ooo.set(f.seq, { body: f.body, fin });
        }
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

function withDefaults(o: LinkOptions): Required<LinkOptions> {
  const maxFrame = Math.floor(o.maxFrame ?? 1024);
  if (!(maxFrame >= MIN_FRAME && maxFrame <= MAX_FRAME_LIMIT)) {
    throw new RangeError(`maxFrame must be ${MIN_FRAME}–${MAX_FRAME_LIMIT} bytes, got ${o.maxFrame}`);
  }
  return {
    maxFrame,
    window: Math.max(2 * maxFrame, Math.floor(o.window ?? 16 * 1024)),
    baud: o.baud ?? 0,
    deadAfterMs: o.deadAfterMs ?? 10_000,
    keepaliveMs: o.keepaliveMs ?? 200,
    helloTimeoutMs: o.helloTimeoutMs ?? 10_000,
  };
}

interface HelloBody {
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
function helloBody(
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

function parseHello(body: Buffer): HelloBody | null {
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

function negotiate(mine: Required<LinkOptions>, theirs: HelloBody): Negotiated | string {
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

// ---------------------------------------------------------------------------------------------------------------
// Opening a tty with serialport's native binding (host and board)

interface PortBinding {
  read(buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number }>;
  write(buffer: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** Explain a failed open of a tty: the errno, and what to do about it. */
export function explainOpenError(path: string, e: unknown): { code: string; message: string; hint: string } {
  const msg = (e as Error)?.message ?? String(e);
  if (/EACCES|permission denied/i.test(msg)) {
    return {
      code: "serial-permission",
      message: `permission denied opening ${path}`,
      hint:
        "add your user to the group owning the port (usually dialout: `sudo usermod -aG dialout $USER`, then log in " +
        "again), or check `ls -l " +
        path +
        "`",
    };
  }
  if (/ENOENT|no such file/i.test(msg)) {
    return {
      code: "serial-missing",
      message: `${path} does not exist`,
      hint: "check the cable and the device name (`qat device ports` lists serial ports)",
    };
  }
  if (/EBUSY|lock|Resource temporarily unavailable/i.test(msg)) {
    return {
      code: "serial-busy",
      message: `${path} is in use by another program (${msg})`,
      hint: "close the other program (a terminal, ModemManager, another qat) and try again",
    };
  }
  return {
    code: "serial-open",
    message: `cannot open ${path}: ${msg}`,
    hint: "check the port and its settings",
  };
}

/** Open a tty raw at `baud` (8N1, no flow control) as a ByteLine, through @serialport/bindings-cpp. */
export async function openTtyLine(
  req: (id: string) => unknown,
  path: string,
  baud: number,
): Promise<ByteLine & { close(): Promise<void>; closed: Promise<Error | null> }> {
  const { autoDetect } = req("@serialport/bindings-cpp") as {
    autoDetect(): { open(o: Record<string, unknown>): Promise<PortBinding> };
  };
  const port = await autoDetect().open({
    path,
    baudRate: baud,
    dataBits: 8,
    stopBits: 1,
    parity: "none",
    rtscts: false,
    xon: false,
    xoff: false,
    xany: false,
    hupcl: false,
    lock: true,
  });
  const listeners: ((b: Buffer) => void)[] = [];
  let writing: Promise<void> = Promise.resolve();
  let open = true;
  let resolveClosed!: (e: Error | null) => void;
  const closed = new Promise<Error | null>((r) => {
    resolveClosed = r;
  });
  void (async () => {
    const buf = Buffer.alloc(64 * 1024);
    while (open) {
      try {
        const { bytesRead } = await port.read(buf, 0, buf.length);
        const copy = Buffer.from(buf.subarray(0, bytesRead));
        for (const l of listeners) l(copy);
      } catch (e) {
        open = false;
        resolveClosed((e as { canceled?: boolean }).canceled ? null : (e as Error));
        return;
      }
    }
  })();
  return {
    write(bytes: Buffer): void {
      if (!open) return;
      writing = writing.then(() => port.write(bytes)).catch(() => {});
    },
    onData(l: (b: Buffer) => void): void {
      listeners.push(l);
    },
    async close(): Promise<void> {
      if (!open) return;
      await writing;
      open = false;
      await port.close().catch(() => {});
      resolveClosed(null);
    },
    closed,
  };
}

export interface TtyServeOptions extends LinkOptions {
  /** The tty, e.g. /dev/ttyGS0 or /dev/serial0. */
  path: string;
  baud: number;
  /** A require() that finds @serialport/bindings-cpp (the agent's install folder). */
  require: (id: string) => unknown;
  /** Serve one session's byte stream (the agent's `serve`). */
  serve: (input: Readable, output: Writable) => Promise<void>;
  log?: (message: string) => void;
}

/** Board side: answer hosts on a tty, one session after another, until the tty fails. */
export async function serveTty(o: TtyServeOptions): Promise<void> {
  const log = o.log ?? (() => {});
  let line: Awaited<ReturnType<typeof openTtyLine>>;
  try {
    line = await openTtyLine(o.require, o.path, o.baud);
  } catch (e) {
    const x = explainOpenError(o.path, e);
    throw new Error(`${x.message} — ${x.hint}`);
  }
  const link = new Link(line, o, "qat-agent");
  let previous: Promise<void> = Promise.resolve();
  link.listen((s) => {
    log(
      `session ${s.id.toString(16)} opened (frame ${s.negotiated.maxFrame}, window ${s.negotiated.window})`,
    );
    previous = previous.then(async () => {
      try {
        if (!s.isClosed) await o.serve(s.readable, s.writable);
      } catch (e) {
        log(`session ${s.id.toString(16)} failed: ${(e as Error).message}`);
      }
      s.end();
      const why = await Promise.race([
        s.closed,
        new Promise<string>((r) => setTimeout(() => r("timeout"), 5000)),
      ]);
      if (why === "timeout") s.close("dead");
      log(`session ${s.id.toString(16)} closed (${s.closeReason ?? why})`);
    });
  });
  log(`listening on ${o.path} at ${o.baud} baud`);
  const err = await line.closed;
  link.shutdown();
  if (err) throw new Error(`${o.path} failed: ${err.message}`);
}
