/**
 * Host-side time limits of agent requests. Two kinds, because a board's silence means different things:
 *
 * - per request: once a request is fully sent, the board has this long to answer it. The default (2 min) is far
 *   above any quick request on a slow board; requests known to take long (a TensorRT engine build, opening a model
 *   with TensorRT, loading the runtime under qemu, a batch of a big model on an emulated board) get more.
 * - idle: while bytes are moving (a request or upload chunk going out, a reply coming in), no progress either way
 *   for this long fails. It is what catches a board that stopped reading mid-upload, or stopped mid-reply — the
 *   request limit starts only once the request is out, so a slow link (serial) never trips it by being slow.
 */
import { DeviceTimeoutError } from "./errors.js";

export interface RequestTimeouts {
  /** Default time a board has to answer a sent request, ms. */
  requestMs: number;
  /** Per request type (e.g. "trt.build"), overriding `requestMs`. */
  perType: Partial<Record<string, number>>;
  /** A transfer without progress for this long fails, ms. */
  idleMs: number;
}

const MINUTE = 60_000;

export const DEFAULT_TIMEOUTS: Readonly<RequestTimeouts> = Object.freeze({
  requestMs: 2 * MINUTE,
  perType: Object.freeze({
    // trtexec builds on a Jetson Nano take tens of minutes for a real model
    "trt.build": 60 * MINUTE,
    // loading onnxruntime (or a big model) on an emulated board runs through qemu's translator
    "runtime.check": 10 * MINUTE,
    "evaluate.batch": 10 * MINUTE,
    "put.end": 10 * MINUTE,
  }),
  idleMs: 2 * MINUTE,
});

/** The answer time allowed for one request (opening a model with TensorRT may build its engine). */
export function limitFor(t: RequestTimeouts, msg: { t: string; runtime?: unknown }): number {
  if (msg.t === "evaluate.open") {
    return t.perType["evaluate.open"] ?? (msg.runtime === "tensorrt" ? 60 * MINUTE : 10 * MINUTE);
  }
  return t.perType[msg.t] ?? t.requestMs;
}

interface Watched {
  type: string;
  limitMs: number;
  /** When the request's last byte was handed to the link; undefined while it is still going out. */
  sentAt?: number;
}

/**
 * Watches the requests of one client and calls `expire` with the error of the first limit crossed. Checks on a timer
 * that runs only while something is pending or being sent.
 */
export class Watchdog {
  private watched = new Map<number, Watched>();
  private sending = 0;
  private lastProgress = Date.now();
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly device: string,
    private readonly timeouts: () => RequestTimeouts,
    /** Bytes of a reply held by the decoder (a reply is coming in). */
    private readonly receiving: () => number,
    private readonly expire: (e: DeviceTimeoutError) => void,
  ) {}

  watch(id: number, msg: { t: string; runtime?: unknown }): void {
    this.watched.set(id, { type: msg.t, limitMs: limitFor(this.timeouts(), msg) });
    this.arm();
  }

  unwatch(id: number): void {
    this.watched.delete(id);
  }

  /** A frame starts going out. */
  sendStart(): void {
    this.sending++;
    this.lastProgress = Date.now();
    this.arm();
  }

  /** Part of a frame was taken by the link. */
  progress(): void {
    this.lastProgress = Date.now();
  }

  /** A frame is fully out; the request's answer time starts (id undefined for posts). */
  sent(id?: number): void {
    this.sending = Math.max(0, this.sending - 1);
    this.lastProgress = Date.now();
    const w = id === undefined ? undefined : this.watched.get(id);
    if (w) w.sentAt = Date.now();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer || this.stopped) return;
    const t = this.timeouts();
    const every = Math.max(5, Math.min(1000, t.idleMs / 4, t.requestMs / 4));
    this.timer = setInterval(() => this.check(), every);
    this.timer.unref?.();
  }

  private check(): void {
    const now = Date.now();
    if (!this.watched.size && !this.sending) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    for (const [id, w] of this.watched) {
      if (w.sentAt !== undefined && now - w.sentAt > w.limitMs) {
        this.stop();
        this.expire(
          new DeviceTimeoutError(
            "request-timeout",
            w.type,
            `the board did not answer '${w.type}' (request ${id}) within ${seconds(w.limitMs)}`,
            {
              device: this.device,
              hint: `check that the board is up and not overloaded; a slow board may need a longer limit (timeouts.perType["${w.type}"])`,
            },
          ),
        );
        return;
      }
    }
    const held = this.receiving();
    const idle = this.timeouts().idleMs;
    if ((this.sending > 0 || held > 0) && now - this.lastProgress > idle) {
      const first = [...this.watched.entries()][0];
      const what = first ? `'${first[1].type}' (request ${first[0]})` : "an upload chunk";
      const where = held > 0 ? `a reply stopped after ${held} bytes` : "the board stopped taking our bytes";
      this.stop();
      this.expire(
        new DeviceTimeoutError(
          "idle-timeout",
          first?.[1].type ?? "put.chunk",
          `${what}: ${where}; nothing moved for ${seconds(idle)}`,
          { device: this.device, hint: "check the link and the board; the connection was closed" },
        ),
      );
    }
  }
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 ? 1 : 0)} s` : `${ms} ms`;
}
