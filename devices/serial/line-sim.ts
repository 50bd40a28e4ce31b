/**
 * A line simulator for testing serial devices without hardware: it sits between two pty pairs
 * (host ⇄ [a … b] ⇄ board), forwards bytes both ways at a real line rate (10 bits a byte, 8N1 — a pty itself has
 * no baud-rate pacing), and can corrupt bytes, drop bytes, and cut the line for a while. Seeded: the same seed
 * gives the same faults for the same traffic.
 */
import { SerialPort } from "serialport";

export interface LineFaults {
  /** Probability that a byte is replaced by a random other byte. */
  corrupt?: number;
  /** Probability that a byte is lost. */
  drop?: number;
}

export interface LineSimOptions extends LineFaults {
  /** Pace both directions at this line rate (bytes/s = baud / 10). 0: as fast as the ptys go. */
  baud?: number;
  seed?: number;
}

export interface LineSimStats {
  forwarded: number;
  corrupted: number;
  dropped: number;
  /** Bytes lost while the line was cut. */
  cutBytes: number;
  cuts: number;
}

/** mulberry32: small, seeded, good enough for fault injection. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Direction {
  private queue: Buffer[] = [];
  private queued = 0;
  private tokens = 0;
  private last = performance.now();
  paused = false;
  constructor(
    private readonly from: SerialPort,
    private readonly to: SerialPort,
    private readonly sim: LineSimulator,
  ) {
    from.on("data", (b: Buffer) => this.onData(b));
  }

  private onData(b: Buffer): void {
    const out = this.sim.mangle(b);
    if (!out.length) return;
    if (!this.sim.bytesPerMs && !this.queued) {
      this.to.write(out);
      return;
    }
    this.queue.push(out);
    this.queued += out.length;
    if (this.queued > 4096 && !this.paused) {
      // a UART's buffers are small: the writer waits (the pty fills up) instead of the simulator queueing forever
      this.paused = true;
      this.from.pause();
    }
  }

  tick(now: number): void {
    const rate = this.sim.bytesPerMs;
    this.tokens = rate
      ? Math.min(this.tokens + (now - this.last) * rate, rate * 20 + 64)
      : Number.MAX_SAFE_INTEGER;
    this.last = now;
    let n = rate ? Math.floor(this.tokens) : this.queued;
    if (!n || !this.queued) return;
    const parts: Buffer[] = [];
    while (n > 0 && this.queue.length) {
      const head = this.queue[0]!;
      if (head.length <= n) {
        parts.push(head);
        this.queue.shift();
        n -= head.length;
      } else {
        parts.push(head.subarray(0, n));
        this.queue[0] = head.subarray(n);
        n = 0;
      }
    }
    const chunk = Buffer.concat(parts);
    if (rate) this.tokens -= chunk.length;
    this.queued -= chunk.length;
    this.to.write(chunk);
    if (this.paused && this.queued < 1024) {
      this.paused = false;
      this.from.resume();
    }
  }
}

export class LineSimulator {
  readonly stats: LineSimStats = { forwarded: 0, corrupted: 0, dropped: 0, cutBytes: 0, cuts: 0 };
  /** The pace, bytes per millisecond (baud / 10 / 1000); 0: unpaced. May be changed while running. */
  bytesPerMs: number;
  private faults: Required<LineFaults>;
  private random: () => number;
  private cutUntil = 0;
  private timer?: NodeJS.Timeout;

  private constructor(
    private readonly a: SerialPort,
    private readonly b: SerialPort,
    opts: LineSimOptions,
  ) {
    this.bytesPerMs = opts.baud ? opts.baud / 10 / 1000 : 0;
    this.faults = { corrupt: opts.corrupt ?? 0, drop: opts.drop ?? 0 };
    this.random = rng(opts.seed ?? 1);
    const ab = new Direction(a, b, this);
    const ba = new Direction(b, a, this);
    // the pace can change while running (bytesPerMs): the clock always runs
    this.timer = setInterval(() => {
      const now = performance.now();
      ab.tick(now);
      ba.tick(now);
    }, 1);
  }

  /** Open both ptys and start forwarding. */
  static async open(a: string, b: string, opts: LineSimOptions = {}): Promise<LineSimulator> {
    const open = (path: string): Promise<SerialPort> =>
      new Promise((res, rej) => {
        const p = new SerialPort({ path, baudRate: opts.baud || 115200, autoOpen: false, lock: false });
        p.open((e) => (e ? rej(e) : res(p)));
      });
    const pa = await open(a);
    const pb = await open(b).catch(async (e: unknown) => {
      await new Promise((r) => pa.close(r));
      throw e;
    });
    return new LineSimulator(pa, pb, opts);
  }

  /** Change the faults from now on. */
  setFaults(f: LineFaults): void {
    this.faults = { corrupt: f.corrupt ?? 0, drop: f.drop ?? 0 };
  }

  /** Cut the line (both ways) for `ms`: every byte in that time is lost. */
  cut(ms: number): void {
    this.cutUntil = Math.max(this.cutUntil, performance.now() + ms);
    this.stats.cuts++;
  }

  /** Apply the faults to bytes entering the line. */
  mangle(b: Buffer): Buffer {
    if (performance.now() < this.cutUntil) {
      this.stats.cutBytes += b.length;
      return Buffer.alloc(0);
    }
    const { corrupt, drop } = this.faults;
    if (!corrupt && !drop) {
      this.stats.forwarded += b.length;
      return b;
    }
    const out = Buffer.allocUnsafe(b.length);
    let o = 0;
    for (let i = 0; i < b.length; i++) {
      if (drop && this.random() < drop) {
        this.stats.dropped++;
        continue;
      }
      let x = b[i]!;
      if (corrupt && this.random() < corrupt) {
        x = (x + 1 + Math.floor(this.random() * 255)) & 0xff;
        this.stats.corrupted++;
      }
      out[o++] = x;
    }
    this.stats.forwarded += o;
    return out.subarray(0, o);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(
      [this.a, this.b].map((p) => new Promise<void>((res) => (p.isOpen ? p.close(() => res()) : res()))),
    );
  }
}
