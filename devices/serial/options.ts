/**
 * What a serial link runs on and with: the byte line, the options each end offers, what the two ends agreed on,
 * and the counters both keep.
 *
 * Board-side code: Node built-ins only; installed beside the agent as serial-options.mjs.
 */
import { MAX_FRAME_LIMIT, MIN_FRAME } from "./frames.js";

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
  /** Out-of-order frames not kept: beyond the window, or over the bytes held beyond a hole. */
  oooDropped: number;
  /**
   * Frames dropped because their MAC tag was missing or wrong (forged, or of a session this end does not know),
   * and HELLOs whose session never proved the secret (a replayed or forged handshake; counted when one is dropped).
   */
  forged: number;
  unprovenHellos: number;
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
    oooDropped: 0,
    forged: 0,
    unprovenHellos: 0,
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

/** The options with defaults filled in; a frame size outside the limits is refused. */
export function withDefaults(o: LinkOptions): Required<LinkOptions> {
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
