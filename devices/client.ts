/**
 * The host side of the agent protocol: requests with ids, replies matched to them, binary payloads beside JSON
 * headers. Works on any Channel (local child, qemu child, SSH exec channel).
 */
import { createHash } from "node:crypto";
import { encodeHead, FrameDecoder, FrameTooLargeError, type Header, MAX_PAYLOAD } from "./agent/framing.js";
import {
  type AskedType,
  type BoardFacts,
  type EvaluateBatchRequest,
  type EvaluationOptions,
  type HelloReply,
  type InstalledInfo,
  type ModelList,
  type OkHeader,
  type PostedType,
  PROTOCOL_VERSION,
  type Request,
  type RequestOf,
  type TrtEngineInfo,
} from "./agent/protocol.js";
import { packTensors, unpackTensor } from "./agent/tensors.js";
import { type BatchResult, batchParts, type HostTensor, joinResults, sliceInputs } from "./batch-split.js";
import { AgentNotInstalledError, DeviceError, ProtocolError, RemoteError } from "./errors.js";
import { DEFAULT_TIMEOUTS, type RequestTimeouts, Watchdog } from "./request-timeouts.js";
import type { Channel } from "./transport/channel.js";

export type {
  EvaluationOptions,
  InstalledInfo,
  ModelEntry,
  ModelList,
  TrtEngineInfo,
} from "./agent/protocol.js";
export type { BatchResult, HostTensor } from "./batch-split.js";
export type { RequestTimeouts } from "./request-timeouts.js";
export type Hello = HelloReply;

interface Pending {
  resolve: (f: { header: Header; payload: Uint8Array }) => void;
  reject: (e: Error) => void;
  type: string;
}

/** Chunk size of uploads: big enough to keep the link busy, small enough to abort quickly. */
export const CHUNK = 256 * 1024;
/** A big payload goes to the link in slices, so a stalled link shows up as no progress (the idle limit). */
const SLICE = 1 << 20;

export interface ClientOptions {
  /** Time limits of requests (defaults: DEFAULT_TIMEOUTS); changeable later through `timeouts`. */
  timeouts?: Partial<RequestTimeouts>;
  /** The largest frame payload sent or accepted (default MAX_PAYLOAD; the board's limit is MAX_PAYLOAD). */
  maxPayload?: number;
}

export class AgentClient {
  private readonly decoder: FrameDecoder;
  private readonly watchdog: Watchdog;
  /** Time limits of requests: the per-request answer time (by type) and the idle limit of transfers. */
  timeouts: RequestTimeouts;
  readonly maxPayload: number;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail = "";
  private closedWith?: Error;
  /**
   * Ask the board to keep partial uploads when the link drops, and continue them from the last byte it holds on the
   * next connection (serial links; the sha256 is checked over the whole file at the end either way).
   */
  resumeUploads = false;
  /** Bytes per put.chunk (smaller on slow links, so a cut loses little and a resume has something to keep). */
  chunkSize = CHUNK;
  /** Uploads continued from a partial file, and the bytes that did not have to be sent again. */
  readonly resumed = { uploads: 0, bytes: 0 };
  readonly exited: Promise<{ code: number | null; signal: string | null }>;

  constructor(
    readonly channel: Channel,
    /** The device, for messages. */
    readonly device: string,
    opts: ClientOptions = {},
  ) {
    this.timeouts = {
      ...DEFAULT_TIMEOUTS,
      ...opts.timeouts,
      perType: { ...DEFAULT_TIMEOUTS.perType, ...opts.timeouts?.perType },
    };
    this.maxPayload = opts.maxPayload ?? MAX_PAYLOAD;
    this.decoder = new FrameDecoder(this.maxPayload);
    this.watchdog = new Watchdog(
      device,
      () => this.timeouts,
      () => this.decoder.buffered,
      (e) => {
        this.fail(e);
        this.channel.kill();
      },
    );
    channel.stdout.on("data", (b: Buffer) => this.onData(b));
    channel.stderr.on("data", (b: Buffer) => {
      this.stderrTail = (this.stderrTail + b.toString("utf8")).slice(-4000);
    });
    channel.stdin.on("error", () => {
      // reported through the exit below
    });
    this.exited = channel.exited.then((r) => {
      // let late stderr arrive before explaining the exit
      return new Promise((res) => setTimeout(() => res(r), 50));
    });
    this.exited.then((r) => this.fail(this.exitError(r)));
  }

  /** What the agent wrote to stderr lately (for diagnostics). */
  get stderr(): string {
    return this.stderrTail;
  }

  private exitError(r: { code: number | null; signal: string | null }): Error {
    const tail = this.stderrTail.trim();
    if (/Cannot find module|ERR_MODULE_NOT_FOUND|No such file/.test(tail) && /agent\.mjs/.test(tail)) {
      return new AgentNotInstalledError("agent-missing", "the qat agent is not installed on the board", {
        device: this.device,
        hint: "run `qat device setup` for this device",
      });
    }
    if (r.code === 127 || /not found/.test(tail.split("\n").at(-1) ?? "")) {
      return new AgentNotInstalledError(
        "node-missing",
        `the board cannot start Node.js (${tail.split("\n").at(-1) ?? "exit 127"})`,
        {
          device: this.device,
          hint: "install Node.js ≥ 18 on the board, or set the device's node path",
        },
      );
    }
    const how = r.signal
      ? `was killed (${r.signal})`
      : r.code === null
        ? "lost its connection"
        : `exited with code ${r.code}`;
    return new ProtocolError(
      "agent-exited",
      `the agent ${how}${tail ? `: ${tail.split("\n").slice(-3).join(" | ")}` : ""}`,
      {
        device: this.device,
      },
    );
  }

  private onData(b: Buffer): void {
    this.watchdog.progress();
    let frames: ReturnType<FrameDecoder["push"]>;
    try {
      frames = this.decoder.push(b);
    } catch (e) {
      this.fail(
        e instanceof FrameTooLargeError
          ? new ProtocolError("frame-too-large", `the agent's stream was refused: ${e.message}`, {
              device: this.device,
              hint: "the board runs another agent, or something else writes to its stream; run `qat device setup`",
            })
          : new ProtocolError("bad-frame", `the agent's stream is corrupt: ${(e as Error).message}`, {
              device: this.device,
            }),
      );
      this.channel.kill();
      return;
    }
    for (const f of frames) {
      const id = f.header.id;
      const p = typeof id === "number" ? this.pending.get(id) : undefined;
      if (!p) {
        if (f.header.t === "error") {
          this.fail(
            new RemoteError(String(f.header.code ?? "error"), String(f.header.message), {
              device: this.device,
            }),
          );
        }
        continue;
      }
      this.pending.delete(id!);
      this.watchdog.unwatch(id!);
      if (f.header.t === "error") {
        p.reject(
          new RemoteError(String(f.header.code ?? "error"), `${p.type}: ${String(f.header.message)}`, {
            device: this.device,
          }),
        );
      } else p.resolve(f);
    }
  }

  private fail(e: Error): void {
    this.closedWith ??= e;
    this.watchdog.stop();
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /**
   * Put one frame on the link: its head, then the payload in slices (views, not a joined copy). Each slice the link
   * takes counts as progress; the last one starts the request's answer time.
   */
  private write(header: { t: string; id?: number }, payload?: Uint8Array, watched?: number): boolean {
    if (this.closedWith) throw this.closedWith;
    const body = payload ?? new Uint8Array(0);
    const head = encodeHead(header, body.length, this.maxPayload);
    const parts: Uint8Array[] = [head];
    for (let off = 0; off < body.length; off += SLICE) {
      parts.push(body.subarray(off, Math.min(body.length, off + SLICE)));
    }
    this.watchdog.sendStart();
    let room = true;
    parts.forEach((part, i) => {
      const last = i === parts.length - 1;
      room = this.channel.stdin.write(part, () =>
        last ? this.watchdog.sent(watched) : this.watchdog.progress(),
      );
    });
    return room;
  }

  /**
   * Send a request and wait for its reply: the reply's header (typed by the request's type) and payload. Only
   * request types the board answers are accepted (put.chunk goes through `post`).
   */
  request<T extends AskedType>(
    msg: RequestOf<T>,
    payload?: Uint8Array,
  ): Promise<{ header: OkHeader<T>; payload: Uint8Array }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith);
      const done = (f: { header: Header; payload: Uint8Array }): void =>
        resolve({ header: f.header as unknown as OkHeader<T>, payload: f.payload });
      this.pending.set(id, { resolve: done, reject, type: (msg as Request).t });
      this.watchdog.watch(id, msg as Request & { runtime?: unknown });
      try {
        this.write({ ...(msg as Request), id }, payload, id);
      } catch (e) {
        this.pending.delete(id);
        this.watchdog.unwatch(id);
        reject(e as Error);
      }
    });
  }

  /** Send without waiting for a reply (put.chunk); resolves when the link has room for more (backpressure). */
  async post<T extends PostedType>(msg: RequestOf<T>, payload?: Uint8Array): Promise<void> {
    if (!this.write({ ...(msg as Request), id: this.nextId++ }, payload)) {
      await new Promise<void>((res, rej) => {
        const onDrain = (): void => {
          cleanup();
          res();
        };
        const onExit = (): void => {
          cleanup();
          rej(
            this.closedWith ??
              new ProtocolError("agent-exited", "the agent stopped", { device: this.device }),
          );
        };
        const cleanup = (): void => {
          this.channel.stdin.off("drain", onDrain);
          clearInterval(poll);
        };
        const poll = setInterval(() => this.closedWith && onExit(), 100);
        this.channel.stdin.once("drain", onDrain);
      });
    }
  }

  async hello(): Promise<Hello> {
    const h = (await this.request({ t: "hello", protocol: PROTOCOL_VERSION })).header;
    if (h.protocol !== PROTOCOL_VERSION) {
      throw new AgentNotInstalledError(
        "protocol-mismatch",
        `the agent speaks protocol ${h.protocol}, this qat speaks ${PROTOCOL_VERSION}`,
        {
          device: this.device,
          hint: "run `qat device setup` to install the matching agent",
        },
      );
    }
    return h;
  }

  async facts(): Promise<BoardFacts> {
    return (await this.request({ t: "facts" })).header.facts;
  }

  /**
   * Upload bytes: to the content-addressed model store (kind "model"), or to one of the runtime's files in the
   * agent's install folder (kind "file"; the board accepts only its fixed list of names, written 0644). The board writes a temporary file, fsyncs it, checks size and sha256, then renames it.
   * Returns whether it was already there.
   */
  async put(
    bytes: Uint8Array,
    target: { kind: "model"; name?: string } | { kind: "file"; path: string },
    opts: { onProgress?: (sent: number, total: number) => void; resume?: boolean } = {},
  ): Promise<{ sha256: string; path: string; existed: boolean; resumedFrom: number }> {
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const resume = opts.resume ?? this.resumeUploads;
    const begin = (
      await this.request({
        t: "put.begin",
        ...target,
        size: bytes.length,
        sha256,
        ...(resume ? { resume: true } : {}),
      })
    ).header;
    if (begin.exists) return { sha256, path: String(begin.path), existed: true, resumedFrom: 0 };
    const put = begin.id;
    const from = Math.max(0, Math.min(bytes.length, Number(begin.offset ?? 0) || 0));
    if (from > 0) {
      this.resumed.uploads++;
      this.resumed.bytes += from;
    }
    const step = Math.max(1, this.chunkSize);
    for (let off = from; off < bytes.length; off += step) {
      await this.post({ t: "put.chunk", put }, bytes.subarray(off, Math.min(bytes.length, off + step)));
      opts.onProgress?.(Math.min(bytes.length, off + step), bytes.length);
    }
    const end = (await this.request({ t: "put.end", put })).header;
    if (end.sha256 !== sha256) {
      throw new ProtocolError(
        "sha256-mismatch",
        `the board stored ${String(end.sha256)}, expected ${sha256}`,
        {
          device: this.device,
        },
      );
    }
    return { sha256, path: String(end.path), existed: false, resumedFrom: from };
  }

  async list(): Promise<ModelList> {
    const { t: _t, id: _id, ...list } = (await this.request({ t: "models.list" })).header;
    return list;
  }

  async current(): Promise<string | null> {
    return (await this.request({ t: "current.get" })).header.current ?? null;
  }

  async setCurrent(
    sha256: string,
    keep: number,
  ): Promise<{ previous: string | null; current: string; history: string[]; removed: string[] }> {
    return (await this.request({ t: "current.set", sha256, keep })).header;
  }

  async rollback(): Promise<{ from: string | null; to: string; history: string[] }> {
    return (await this.request({ t: "rollback" })).header;
  }

  async commitInstall(info: InstalledInfo): Promise<InstalledInfo> {
    return (await this.request({ t: "install.commit", info })).header.installed;
  }

  /** Load the runtime on the board (fails with the loader's message, e.g. a too-old glibc). */
  async runtimeCheck(backend?: string): Promise<{ versions: Record<string, string> }> {
    return (await this.request({ t: "runtime.check", backend })).header;
  }

  /** Remove agent installs other than the running one. */
  async pruneInstalls(): Promise<string[]> {
    return (await this.request({ t: "install.prune" })).header.removed;
  }

  async openEvaluation(
    model: string,
    opts: EvaluationOptions = {},
  ): Promise<{
    session: number;
    sha256: string;
    inputs: string[];
    outputs: string[];
    runtime?: string;
    tensorrt?: TrtEngineInfo;
  }> {
    return (await this.request({ t: "evaluate.open", model, ...this.noProgram(opts) })).header;
  }

  /** Build (or find) the TensorRT engine of a model on the board with trtexec. */
  async buildEngine(
    model: string,
    opts: Pick<EvaluationOptions, "trtexec" | "inputs" | "dynamic" | "int8">,
  ): Promise<TrtEngineInfo & { sha256: string }> {
    return (await this.request({ t: "trt.build", model, ...this.noProgram(opts) })).header;
  }

  /** The board runs only the trtexec configured on it at setup: a program named by the host is refused here. */
  private noProgram<O extends { trtexec?: string }>(opts: O): Omit<O, "trtexec"> {
    const { trtexec, ...rest } = opts;
    if (trtexec !== undefined) {
      throw new DeviceError(
        "bad-option",
        `trtexec '${trtexec}' cannot be chosen from the host: the board runs the trtexec configured on it`,
        {
          device: this.device,
          hint: `give its path at setup: \`qat device setup ${this.device} --trtexec ${trtexec}\``,
          exitCode: 2,
        },
      );
    }
    return rest;
  }

  /**
   * Run one batch on the board. A batch whose inputs exceed the frame limit is sent in parts along its first
   * dimension, and the parts' results are joined (the batch's time is then the sum of the parts').
   */
  async runBatch(
    session: number,
    inputs: HostTensor[],
    labels?: BigInt64Array,
    outputs?: string[],
  ): Promise<BatchResult> {
    const parts = batchParts(inputs, labels, this.maxPayload, this.device);
    const results: BatchResult[] = [];
    for (const [a, b] of parts) {
      const sub = parts.length === 1 ? inputs : sliceInputs(inputs, a, b);
      results.push(await this.runOne(session, sub, labels?.subarray(a, b), outputs));
    }
    return joinResults(
      results,
      parts.map(([a, b]) => b - a),
      this.device,
    );
  }

  private async runOne(
    session: number,
    inputs: HostTensor[],
    labels?: BigInt64Array,
    outputs?: string[],
  ): Promise<BatchResult> {
    const all = labels
      ? [...inputs, { name: "__labels", dtype: "int64", dims: [labels.length], data: labels }]
      : inputs;
    const { refs, payload } = packTensors(all);
    const msg: EvaluateBatchRequest = {
      t: "evaluate.batch",
      session,
      inputs: labels ? refs.slice(0, -1) : refs,
      labels: labels ? refs.at(-1) : undefined,
      outputs,
    };
    const r = await this.request(msg, payload);
    const h = r.header;
    return {
      outputs: h.outputs.map((ref) => ({
        name: ref.name,
        dtype: ref.dtype,
        dims: ref.dims,
        data: unpackTensor(ref, r.payload),
      })),
      ms: Number(h.ms),
      perSampleMs: Number(h.perSampleMs),
      correct: h.correct ?? null,
      maxRSS: Number(h.maxRSS) || 0,
      runtime: h.runtime === "tensorrt" ? "tensorrt" : "onnxruntime",
      ...(h.runtime === "tensorrt" ? { gpuComputeMs: h.gpuComputeMs ?? null, wallMs: Number(h.wallMs) } : {}),
    };
  }

  async closeEvaluation(session: number): Promise<{ runs: number; maxRSS: number }> {
    return (await this.request({ t: "evaluate.close", session })).header;
  }

  /** Say bye, close stdin and wait for the agent to exit. */
  async close(): Promise<void> {
    if (!this.closedWith) {
      try {
        await this.request({ t: "bye" });
      } catch {
        // already gone
      }
    }
    this.channel.stdin.end();
    const timer = setTimeout(() => this.channel.kill(), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}
