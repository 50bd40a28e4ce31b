/**
 * The qat board agent: one self-contained file (it imports only Node built-ins; onnxruntime-node is loaded from
 * the install folder beside it when a model is evaluated). It speaks a length-prefixed, versioned protocol over
 * stdin/stdout, so the same program serves an SSH exec channel, a local child process and a serial line.
 *
 * Frame: "QAT" 0x01 | u32 BE header length | u32 BE payload length | header (UTF-8 JSON) | payload (raw bytes).
 * Bytes before a frame's magic are skipped (a login banner on the channel does not break the stream).
 *
 * Board state lives in the agent's home (default ~/.qat-agent):
 *   install/<key>/agent.mjs, install/<key>/node_modules/...   the agent and its runtime, pushed by the host
 *   installed.json                                            which install is active (written last, atomically)
 *   models/<sha256>/model.onnx (+ meta.json)                  content-addressed models
 *   current -> models/<sha256>                                the deployed model (symlink swapped atomically)
 *   history.json                                              deployed versions, oldest first
 *   tmp/                                                      uploads in progress (never visible as models)
 *
 * This file is also imported by the host for the frame codec; `main()` runs only when it is the program.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import { delimiter, dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const PROTOCOL_VERSION = 1;
export const AGENT_VERSION = "0.1.0";
export const CAPABILITIES = [
  "facts",
  "put",
  "models",
  "current",
  "rollback",
  "evaluate",
  "install",
  "tensorrt",
];
export const MAGIC = Uint8Array.of(0x51, 0x41, 0x54, 0x01); // "QAT" + frame format 1
export const MAX_HEADER = 4 << 20;
export const MAX_PAYLOAD = 512 << 20;

export interface Header {
  t: string;
  id?: number;
  [k: string]: unknown;
}

export interface Frame {
  header: Header;
  payload: Uint8Array;
}

/** One frame as bytes. */
export function encodeFrame(header: Header, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.from(JSON.stringify(header), "utf8");
  if (h.length > MAX_HEADER) throw new Error(`frame header of ${h.length} bytes exceeds ${MAX_HEADER}`);
  if (payload.length > MAX_PAYLOAD)
    throw new Error(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const pre = Buffer.alloc(12);
  pre.set(MAGIC, 0);
  pre.writeUInt32BE(h.length, 4);
  pre.writeUInt32BE(payload.length, 8);
  return Buffer.concat([pre, h, payload]);
}

/** Incremental frame parser: push bytes in, frames come out. Bytes before a magic are reported as noise. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes skipped because they were not part of a frame (kept to explain a broken stream). */
  noise = "";

  push(chunk: Uint8Array): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out: Frame[] = [];
    for (;;) {
      const at = this.buf.indexOf(Buffer.from(MAGIC));
      if (at < 0) {
        // keep a possible partial magic at the end
        const keep = Math.min(this.buf.length, MAGIC.length - 1);
        this.skip(this.buf.length - keep);
        break;
      }
      if (at > 0) this.skip(at);
      if (this.buf.length < 12) break;
      const hl = this.buf.readUInt32BE(4);
      const pl = this.buf.readUInt32BE(8);
      if (hl > MAX_HEADER || pl > MAX_PAYLOAD) {
        throw new Error(
          `frame claims header ${hl} and payload ${pl} bytes (limits ${MAX_HEADER}, ${MAX_PAYLOAD})`,
        );
      }
      if (this.buf.length < 12 + hl + pl) break;
      const header = JSON.parse(this.buf.subarray(12, 12 + hl).toString("utf8")) as Header;
      const payload = new Uint8Array(this.buf.subarray(12 + hl, 12 + hl + pl)); // copy: aligned, owned
      this.buf = this.buf.subarray(12 + hl + pl);
      if (typeof header !== "object" || header === null || typeof header.t !== "string") {
        throw new Error("frame header is not an object with a type");
      }
      out.push({ header, payload });
    }
    return out;
  }

  private skip(n: number): void {
    if (n <= 0) return;
    this.noise = (this.noise + this.buf.subarray(0, n).toString("latin1")).slice(-2000);
    this.buf = this.buf.subarray(n);
  }
}

/** A tensor's place in a payload. */
export interface TensorRef {
  name: string;
  dtype: string;
  dims: number[];
  offset: number;
  length: number;
}

/** The typed arrays tensors travel in. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;
type TypedCtor = { new (b: ArrayBuffer, o: number, n: number): TypedArray; BYTES_PER_ELEMENT: number };

export const TYPED: Record<string, TypedCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  float16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
};

/** Lay tensors out in one payload (each 8-byte aligned) and describe them. */
export function packTensors(
  tensors: { name: string; dtype: string; dims: number[]; data: ArrayBufferView }[],
): {
  refs: TensorRef[];
  payload: Buffer;
} {
  const refs: TensorRef[] = [];
  const parts: Buffer[] = [];
  let off = 0;
  for (const t of tensors) {
    const pad = (8 - (off % 8)) % 8;
    if (pad) parts.push(Buffer.alloc(pad));
    off += pad;
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    refs.push({ name: t.name, dtype: t.dtype, dims: t.dims, offset: off, length: bytes.length });
    parts.push(bytes);
    off += bytes.length;
  }
  return { refs, payload: Buffer.concat(parts) };
}

/** A tensor described by `ref` as a typed array over a copy of its bytes. */
export function unpackTensor(ref: TensorRef, payload: Uint8Array): TypedArray {
  const ctor = TYPED[ref.dtype];
  if (!ctor) throw new Error(`tensor '${ref.name}': unsupported dtype ${ref.dtype}`);
  if (ref.offset < 0 || ref.offset + ref.length > payload.length || ref.length % ctor.BYTES_PER_ELEMENT) {
    throw new Error(
      `tensor '${ref.name}': bytes ${ref.offset}+${ref.length} outside the payload of ${payload.length}`,
    );
  }
  const copy = new Uint8Array(ref.length);
  copy.set(payload.subarray(ref.offset, ref.offset + ref.length));
  return new ctor(copy.buffer, 0, ref.length / ctor.BYTES_PER_ELEMENT);
}

// ---------------------------------------------------------------------------------------------------------------
// Board facts

export interface BoardFacts {
  platform: string;
  arch: string;
  machine: string;
  node: string;
  glibc: string | null;
  memTotal: number;
  cpus: number;
  cpuinfo: string | null;
  deviceTreeModel: string | null;
  nvTegraRelease: string | null;
  hostname: string;
  kernel: string;
}

function readText(path: string, max = 65536): string | null {
  try {
    return fs.readFileSync(path).subarray(0, max).toString("utf8");
  } catch {
    return null;
  }
}

export function collectFacts(): BoardFacts {
  const report = process.report?.getReport() as unknown as
    | { header?: { glibcVersionRuntime?: string } }
    | undefined;
  return {
    platform: process.platform,
    arch: process.arch,
    machine: typeof os.machine === "function" ? os.machine() : process.arch,
    node: process.version,
    glibc: report?.header?.glibcVersionRuntime ?? null,
    memTotal: os.totalmem(),
    cpus: os.cpus().length,
    cpuinfo: readText("/proc/cpuinfo"),
    deviceTreeModel:
      (readText("/proc/device-tree/model") ?? readText("/sys/firmware/devicetree/base/model"))?.replace(
        /\0+$/,
        "",
      ) ?? null,
    nvTegraRelease: readText("/etc/nv_tegra_release"),
    hostname: os.hostname(),
    kernel: os.release(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The agent

class AgentFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const SHA = /^[0-9a-f]{64}$/;

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // some filesystems cannot fsync a folder; renames stay atomic
  }
}

function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w", 0o644);
  try {
    fs.writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
  fsyncDir(dirname(path));
}

function sha256File(path: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(path, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

interface Upload {
  fd: number;
  tmp: string;
  final: string;
  kind: "model" | "file";
  size: number;
  sha256: string;
  received: number;
  hash: ReturnType<typeof createHash>;
  name?: string;
  failed?: AgentFailure;
  /** Kept in tmp/ when the link drops, for `put.begin` with `resume` to continue. */
  resumable?: boolean;
}

interface OrtLike {
  InferenceSession: { create(src: Uint8Array | string, opts?: unknown): Promise<OrtSession> };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensor;
  env: { versions?: Record<string, string>; logLevel?: string };
}
interface OrtTensor {
  type: string;
  dims: readonly number[];
  data: unknown;
}
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches?: string[]): Promise<Record<string, OrtTensor>>;
  release?(): Promise<void>;
}

export class Agent {
  readonly home: string;
  private uploads = new Map<number, Upload>();
  private sessions = new Map<
    number,
    | { kind: "ort"; session: OrtSession; sha256: string; runs: number }
    | { kind: "tensorrt"; trt: TrtSession; sha256: string; runs: number }
  >();
  private nextSession = 1;
  private ort?: OrtLike;

  constructor(home: string) {
    this.home = resolve(home);
    fs.mkdirSync(join(this.home, "models"), { recursive: true });
    fs.mkdirSync(join(this.home, "tmp"), { recursive: true });
    this.cleanStale();
  }

  /** Remove uploads left by agents that died mid-way (their pid is gone). */
  private cleanStale(): void {
    for (const f of fs.readdirSync(join(this.home, "tmp"))) {
      if (/\.resume(\.json)?$/.test(f)) {
        // a resumable upload (serial links): kept for a day for the host to continue it
        const st = fs.statSync(join(this.home, "tmp", f));
        if (Date.now() - st.mtimeMs > 24 * 3600_000) fs.rmSync(join(this.home, "tmp", f), { force: true });
        continue;
      }
      const m = /\.(\d+)\.part$/.exec(f);
      const pid = m ? Number(m[1]) : 0;
      let alive = false;
      if (pid && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (!alive || pid === process.pid) fs.rmSync(join(this.home, "tmp", f), { force: true });
    }
  }

  /** Remove this process's uploads in progress (connection lost, shutdown). */
  abortUploads(): void {
    for (const u of this.uploads.values()) {
      if (u.resumable && !u.failed) {
        // keep what arrived, and say how much is good, for the next connection to continue from there
        try {
          fs.fsyncSync(u.fd);
          fs.writeFileSync(
            `${u.tmp}.json`,
            JSON.stringify({ sha256: u.sha256, size: u.size, received: u.received }),
          );
        } catch {
          fs.rmSync(u.tmp, { force: true });
        }
      }
      try {
        fs.closeSync(u.fd);
      } catch {
        // already closed
      }
      if (!u.resumable || u.failed) fs.rmSync(u.tmp, { force: true });
    }
    this.uploads.clear();
  }

  private installed(): Record<string, unknown> | null {
    const t = readText(join(this.home, "installed.json"));
    if (!t) return null;
    try {
      return JSON.parse(t) as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  private installDir(): string {
    return dirname(fileURLToPath(import.meta.url));
  }

  private loadOrt(want?: string): OrtLike {
    if (this.ort) return this.ort;
    const info = this.installed();
    const backend = want ?? (info?.backend as string | undefined) ?? "onnxruntime-node";
    if (backend !== "onnxruntime-node" && backend !== "onnxruntime-web") {
      throw new AgentFailure("bad-request", `unknown backend '${backend}'`);
    }
    const req = createRequire(join(this.installDir(), "agent.mjs"));
    try {
      this.ort = req(backend) as OrtLike;
    } catch (e) {
      throw new AgentFailure(
        "runtime-missing",
        `cannot load ${backend} from ${this.installDir()}/node_modules: ${(e as Error).message.split("\n")[0]}`,
      );
    }
    return this.ort;
  }

  private currentSha(): string | null {
    const p = join(this.home, "current");
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return null;
    }
    const target = st.isSymbolicLink() ? fs.readlinkSync(p) : fs.readFileSync(p, "utf8").trim();
    const sha = target.split(/[\\/]/).filter(Boolean).pop() ?? "";
    return SHA.test(sha) ? sha : null;
  }

  private setCurrentPointer(sha: string): void {
    const p = join(this.home, "current");
    const tmp = `${p}.${process.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    try {
      fs.symlinkSync(join("models", sha), tmp);
    } catch {
      fs.writeFileSync(tmp, sha); // no symlinks here: a file holding the hash, swapped the same way
    }
    fs.renameSync(tmp, p);
    fsyncDir(this.home);
  }

  private history(): string[] {
    const t = readText(join(this.home, "history.json"));
    if (!t) return [];
    try {
      const h = JSON.parse(t) as unknown;
      return Array.isArray(h) ? h.filter((s): s is string => typeof s === "string" && SHA.test(s)) : [];
    } catch {
      return [];
    }
  }

  private modelPath(sha: string): string {
    if (!SHA.test(sha)) throw new AgentFailure("bad-request", `'${sha}' is not a sha256 hex digest`);
    return join(this.home, "models", sha, "model.onnx");
  }

  private resolveModel(ref: string): string {
    const sha = ref === "current" ? this.currentSha() : ref;
    if (!sha) throw new AgentFailure("no-current", "no model is deployed (current is not set)");
    const p = this.modelPath(sha);
    if (!fs.existsSync(p)) throw new AgentFailure("no-model", `model ${sha} is not on this board`);
    return sha;
  }

  private listModels(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const d of fs.readdirSync(join(this.home, "models"))) {
      if (!SHA.test(d)) continue;
      const p = join(this.home, "models", d, "model.onnx");
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        continue;
      }
      let meta: Record<string, unknown> = {};
      try {
        meta = JSON.parse(fs.readFileSync(join(this.home, "models", d, "meta.json"), "utf8")) as Record<
          string,
          unknown
        >;
      } catch {
        meta = {};
      }
      out.push({ sha256: d, size: st.size, storedAt: st.mtime.toISOString(), ...meta });
    }
    return out;
  }

  private safeInstallPath(rel: string): string {
    const norm = normalize(rel);
    if (!rel || isAbsolute(rel) || norm.startsWith("..") || norm.split(sep).includes("..")) {
      throw new AgentFailure(
        "bad-request",
        `refusing file path '${rel}' (must be relative, inside the install)`,
      );
    }
    return join(this.installDir(), norm);
  }

  /** Handle one request; returns the reply header and payload (or null for no reply). */
  async handle(
    h: Header,
    payload: Uint8Array,
  ): Promise<{ header: Record<string, unknown>; payload?: Uint8Array } | null> {
    switch (h.t) {
      case "hello":
        return {
          header: {
            protocol: PROTOCOL_VERSION,
            agentVersion: AGENT_VERSION,
            capabilities: CAPABILITIES,
            home: this.home,
            installDir: this.installDir(),
            installed: this.installed(),
            pid: process.pid,
            facts: collectFacts(),
          },
        };
      case "facts":
        return { header: { facts: collectFacts() } };
      case "put.begin":
        return { header: this.putBegin(h) };
      case "put.chunk": {
        const u = this.uploads.get(Number(h.put));
        if (!u) return null; // the begin failed and was answered; drop its chunks
        if (u.failed) return null;
        if (u.received + payload.length > u.size) {
          u.failed = new AgentFailure("size-mismatch", `more bytes than the announced ${u.size}`);
          return null;
        }
        let off = 0;
        while (off < payload.length)
          off += fs.writeSync(u.fd, payload, off, payload.length - off, u.received + off);
        u.hash.update(payload);
        u.received += payload.length;
        return null;
      }
      case "put.end":
        return { header: this.putEnd(Number(h.put)) };
      case "put.abort": {
        const u = this.uploads.get(Number(h.put));
        if (u) {
          fs.closeSync(u.fd);
          fs.rmSync(u.tmp, { force: true });
          this.uploads.delete(Number(h.put));
        }
        return { header: {} };
      }
      case "install.commit": {
        const info = h.info as Record<string, unknown>;
        if (typeof info !== "object" || info === null)
          throw new AgentFailure("bad-request", "install.commit needs info");
        const record = { ...info, installDir: this.installDir(), installedAt: new Date().toISOString() };
        writeAtomic(join(this.home, "installed.json"), `${JSON.stringify(record, null, 2)}\n`);
        return { header: { installed: record } };
      }
      case "install.prune": {
        const keep = this.installDir();
        const removed: string[] = [];
        const root = join(this.home, "install");
        for (const d of fs.existsSync(root) ? fs.readdirSync(root) : []) {
          const p = join(root, d);
          if (resolve(p) !== resolve(keep)) {
            fs.rmSync(p, { recursive: true, force: true });
            removed.push(d);
          }
        }
        return { header: { removed } };
      }
      case "runtime.check": {
        const ort = this.loadOrt(typeof h.backend === "string" ? h.backend : undefined);
        return { header: { versions: ort.env?.versions ?? {} } };
      }
      case "models.list":
        return { header: { current: this.currentSha(), history: this.history(), models: this.listModels() } };
      case "current.get":
        return { header: { current: this.currentSha() } };
      case "current.set":
        return { header: this.setCurrent(String(h.sha256), Number(h.keep ?? 3)) };
      case "rollback":
        return { header: this.rollback() };
      case "evaluate.open":
        return { header: await this.evalOpen(h) };
      case "evaluate.batch":
        return await this.evalBatch(h, payload);
      case "evaluate.close": {
        const s = this.sessions.get(Number(h.session));
        this.sessions.delete(Number(h.session));
        if (s?.kind === "ort" && s.session.release) await s.session.release();
        const maxRSS = s?.kind === "tensorrt" ? s.trt.peakRss : process.resourceUsage().maxRSS * 1024;
        return { header: { runs: s?.runs ?? 0, maxRSS } };
      }
      case "trt.build": {
        const sha = this.resolveModel(String(h.model ?? "current"));
        const b = await this.trtBuild(sha, h);
        return { header: { sha256: sha, ...b } };
      }
      case "bye":
        return { header: {} };
      default:
        throw new AgentFailure("unknown-request", `unknown request type '${h.t}' (agent ${AGENT_VERSION})`);
    }
  }

  private putBegin(h: Header): Record<string, unknown> {
    const sha = String(h.sha256 ?? "");
    const size = Number(h.size);
    if (!SHA.test(sha)) throw new AgentFailure("bad-request", "put.begin needs a sha256 hex digest");
    if (!Number.isSafeInteger(size) || size < 0)
      throw new AgentFailure("bad-request", "put.begin needs a size");
    const kind = h.kind === "file" ? "file" : "model";
    const final = kind === "model" ? this.modelPath(sha) : this.safeInstallPath(String(h.path ?? ""));
    if (fs.existsSync(final) && fs.statSync(final).size === size && sha256File(final) === sha) {
      return { exists: true, path: final };
    }
    const name = typeof h.name === "string" ? h.name : undefined;
    const mode = typeof h.mode === "number" ? h.mode : 0o644;
    if (h.resume === true) {
      // resumable: named by what it will be, continued from the bytes a previous connection left
      const key = createHash("sha256")
        .update(`${kind}\0${final}\0${sha}\0${size}`)
        .digest("hex")
        .slice(0, 32);
      const tmp = join(this.home, "tmp", `${key}.resume`);
      for (const u of this.uploads.values()) {
        if (u.tmp === tmp) throw new AgentFailure("busy", `an upload of ${sha} is already in progress`);
      }
      let received = 0;
      try {
        const rec = JSON.parse(fs.readFileSync(`${tmp}.json`, "utf8")) as {
          sha256?: string;
          received?: number;
        };
        if (rec.sha256 === sha && Number.isSafeInteger(rec.received)) {
          received = Math.min(rec.received!, fs.statSync(tmp).size, size);
        }
      } catch {
        received = 0;
      }
      fs.rmSync(`${tmp}.json`, { force: true });
      const fd = fs.openSync(tmp, received > 0 ? "r+" : "w", 0o644);
      fs.ftruncateSync(fd, received);
      const hash = createHash("sha256");
      const buf = Buffer.alloc(1 << 20);
      for (let off = 0; off < received; ) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, received - off), off);
        if (n <= 0) break;
        hash.update(buf.subarray(0, n));
        off += n;
      }
      const upload: Upload = {
        fd,
        tmp,
        final,
        kind,
        size,
        sha256: sha,
        received,
        hash,
        name,
        resumable: true,
      };
      this.uploads.set(Number(h.id), upload);
      fs.chmodSync(tmp, mode & 0o755);
      return { exists: false, offset: received };
    }
    const tmp = join(this.home, "tmp", `${sha.slice(0, 16)}-${Number(h.id)}.${process.pid}.part`);
    const fd = fs.openSync(tmp, "w", 0o644);
    this.uploads.set(Number(h.id), {
      fd,
      tmp,
      final,
      kind,
      size,
      sha256: sha,
      received: 0,
      hash: createHash("sha256"),
      name,
    });
    if (mode !== 0o644) fs.chmodSync(tmp, mode & 0o755);
    return { exists: false, offset: 0 };
  }

  private putEnd(id: number): Record<string, unknown> {
    const u = this.uploads.get(id);
    if (!u) throw new AgentFailure("bad-request", `no upload ${id} in progress`);
    this.uploads.delete(id);
    try {
      if (u.failed) throw u.failed;
      fs.fsyncSync(u.fd);
      fs.closeSync(u.fd);
      u.fd = -1;
      if (u.received !== u.size) {
        throw new AgentFailure("size-mismatch", `received ${u.received} bytes, expected ${u.size}`);
      }
      const got = u.hash.digest("hex");
      if (got !== u.sha256)
        throw new AgentFailure("sha256-mismatch", `sha256 ${got} does not match ${u.sha256}`);
      fs.mkdirSync(dirname(u.final), { recursive: true });
      if (u.kind === "model") {
        writeAtomic(
          join(dirname(u.final), "meta.json"),
          JSON.stringify({ name: u.name ?? null, size: u.size, uploadedAt: new Date().toISOString() }),
        );
      }
      fs.renameSync(u.tmp, u.final);
      fsyncDir(dirname(u.final));
      return { path: u.final, sha256: got };
    } catch (e) {
      if (u.fd >= 0) fs.closeSync(u.fd);
      fs.rmSync(u.tmp, { force: true });
      throw e;
    }
  }

  private setCurrent(sha: string, keep: number): Record<string, unknown> {
    this.resolveModel(sha);
    const previous = this.currentSha();
    const hist = this.history().filter((s) => s !== sha);
    hist.push(sha);
    this.setCurrentPointer(sha);
    const kept = Math.max(1, Math.floor(keep) || 1);
    const trimmed = hist.slice(-kept);
    writeAtomic(join(this.home, "history.json"), JSON.stringify(trimmed));
    const removed: string[] = [];
    for (const m of this.listModels()) {
      const s = String(m.sha256);
      if (!trimmed.includes(s)) {
        fs.rmSync(join(this.home, "models", s), { recursive: true, force: true });
        removed.push(s);
      }
    }
    return { previous, current: sha, history: trimmed, removed };
  }

  private rollback(): Record<string, unknown> {
    const cur = this.currentSha();
    const hist = this.history();
    const idx = cur ? hist.lastIndexOf(cur) : hist.length;
    const candidates = hist.slice(0, idx).filter((s) => fs.existsSync(this.modelPath(s)));
    const to = candidates.at(-1);
    if (!to) throw new AgentFailure("no-previous", "there is no earlier version to roll back to");
    this.setCurrentPointer(to);
    const next = hist.slice(0, hist.lastIndexOf(to) + 1);
    writeAtomic(join(this.home, "history.json"), JSON.stringify(next));
    return { from: cur, to, history: next };
  }

  private async evalOpen(h: Header): Promise<Record<string, unknown>> {
    const sha = this.resolveModel(String(h.model ?? "current"));
    if (h.runtime === "tensorrt") {
      const b = await this.trtBuild(sha, h);
      const id = this.nextSession++;
      const trt: TrtSession = {
        trtexec: b.trtexec,
        engine: b.engine,
        shapes: b.shapes,
        inputs: b.inputs,
        iterations: typeof h.iterations === "number" && h.iterations >= 1 ? Math.floor(h.iterations) : 10,
        peakRss: 0,
      };
      this.sessions.set(id, { kind: "tensorrt", trt, sha256: sha, runs: 0 });
      return {
        session: id,
        sha256: sha,
        inputs: b.inputs.map((i) => i.name),
        outputs: [],
        runtime: "tensorrt",
        tensorrt: {
          version: b.version,
          trtexec: b.trtexec,
          engine: b.engine,
          cached: b.cached,
          buildMs: b.buildMs,
          argv: b.argv,
        },
      };
    }
    if (h.runtime !== undefined && h.runtime !== "onnxruntime") {
      throw new AgentFailure(
        "bad-request",
        `unknown runtime '${String(h.runtime)}' (onnxruntime or tensorrt)`,
      );
    }
    const ort = this.loadOrt();
    const opts: Record<string, unknown> = {
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      logSeverityLevel: 3,
    };
    if (typeof h.threads === "number" && h.threads > 0) {
      opts.intraOpNumThreads = h.threads;
      opts.interOpNumThreads = 1;
    }
    if (h.config && typeof h.config === "object") opts.extra = h.config;
    const wasm = (ort.env as { wasm?: { numThreads?: number } }).wasm;
    if (wasm && typeof h.threads === "number" && h.threads > 0) wasm.numThreads = h.threads;
    let session: OrtSession;
    try {
      session = await ort.InferenceSession.create(this.modelPath(sha), opts);
    } catch (e) {
      throw new AgentFailure("model-load", `onnxruntime cannot load model ${sha}: ${(e as Error).message}`);
    }
    const id = this.nextSession++;
    this.sessions.set(id, { kind: "ort", session, sha256: sha, runs: 0 });
    return {
      session: id,
      sha256: sha,
      inputs: session.inputNames,
      outputs: session.outputNames,
      runtime: "onnxruntime",
    };
  }

  /**
   * Build (or find, cached beside the model) a TensorRT engine of model `sha` with trtexec: the inputs' shapes
   * come from the host (`inputs`: name and dims, batch included; `dynamic`: pass them as --shapes), `int8`
   * enables int8 precision (QDQ models: explicit quantization with the model's own scales).
   */
  private async trtBuild(
    sha: string,
    h: Header,
  ): Promise<{
    trtexec: string;
    version: string | null;
    engine: string;
    cached: boolean;
    buildMs: number;
    shapes: string | null;
    inputs: { name: string; dims: number[] }[];
    argv: string[];
  }> {
    const inputs = Array.isArray(h.inputs) ? (h.inputs as { name?: unknown; dims?: unknown }[]) : [];
    if (
      !inputs.length ||
      !inputs.every(
        (i) =>
          typeof i.name === "string" &&
          Array.isArray(i.dims) &&
          i.dims.every((d) => Number.isInteger(d) && (d as number) > 0),
      )
    ) {
      throw new AgentFailure("bad-request", "tensorrt needs every input's name and whole-number dims");
    }
    const ins = inputs.map((i) => ({ name: i.name as string, dims: i.dims as number[] }));
    const shapes = h.dynamic === true ? trtShapesSpec(ins) : null;
    const trtexec = findTrtexec(typeof h.trtexec === "string" ? h.trtexec : undefined);
    const help = await runTool(trtexec, ["--help"], 120_000);
    const version = trtVersion(help.stdout + help.stderr);
    const argv = trtBuildArgs(this.modelPath(sha), "ENGINE", { version, shapes, int8: h.int8 === true });
    const key = createHash("sha256")
      .update(JSON.stringify({ version, argv: argv.filter((a) => !a.startsWith("--onnx=")) }))
      .digest("hex")
      .slice(0, 16);
    const dir = join(this.home, "models", sha, "tensorrt");
    const engine = join(dir, `${key}.plan`);
    const shown = (a: string): string => (a.startsWith("--saveEngine=") ? `--saveEngine=${engine}` : a);
    if (fs.existsSync(engine)) {
      return {
        trtexec,
        version,
        engine,
        cached: true,
        buildMs: 0,
        shapes,
        inputs: ins,
        argv: argv.map(shown),
      };
    }
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${engine}.${process.pid}.tmp`;
    const real = argv.map((a) => (a === "--saveEngine=ENGINE" ? `--saveEngine=${tmp}` : a));
    const t0 = Date.now();
    const r = await runTool(trtexec, real, 3_600_000);
    if (r.code !== 0 || /&&&& FAILED/.test(r.stdout) || !fs.existsSync(tmp)) {
      fs.rmSync(tmp, { force: true });
      throw new AgentFailure(
        "trt-build-failed",
        `${trtexec} could not build an engine from model ${sha.slice(0, 16)} (exit ${r.code}): ${logTail(r)}`,
      );
    }
    fs.renameSync(tmp, engine);
    fsyncDir(dir);
    return {
      trtexec,
      version,
      engine,
      cached: false,
      buildMs: Date.now() - t0,
      shapes,
      inputs: ins,
      argv: real.map(shown),
    };
  }

  /** One batch through trtexec: inputs as raw files (--loadInputs), outputs from --exportOutput's JSON. */
  private async trtBatch(
    s: { trt: TrtSession; runs: number },
    h: Header,
    payload: Uint8Array,
  ): Promise<{ header: Record<string, unknown>; payload: Uint8Array }> {
    const trt = s.trt;
    const refs = h.inputs as TensorRef[];
    const tag = `trt-${process.pid}-${Number(h.session)}-${s.runs}`;
    const files: string[] = [];
    const out = join(this.home, "tmp", `${tag}-out.json`);
    const loads: string[] = [];
    try {
      for (const [i, ref] of refs.entries()) {
        const want = trt.inputs.find((x) => x.name === ref.name);
        if (!want)
          throw new AgentFailure("bad-request", `input '${ref.name}' is not one the engine was built for`);
        if (ref.dtype !== "float32" || ref.dims.join("x") !== want.dims.join("x")) {
          throw new AgentFailure(
            "bad-request",
            `input '${ref.name}': the engine takes float32 [${want.dims}], got ${ref.dtype} [${ref.dims}]`,
          );
        }
        const f = join(this.home, "tmp", `${tag}-in${i}.bin`);
        if (/[,:]/.test(f))
          throw new AgentFailure("bad-request", `the agent home ${this.home} has ',' or ':' in it`);
        fs.writeFileSync(f, payload.subarray(ref.offset, ref.offset + ref.length));
        files.push(f);
        loads.push(`${trtName(ref.name)}:${f}`);
      }
      const argv = [
        `--loadEngine=${trt.engine}`,
        `--loadInputs=${loads.join(",")}`,
        `--exportOutput=${out}`,
        ...(trt.shapes ? [`--shapes=${trt.shapes}`] : []),
        `--iterations=${trt.iterations}`,
        "--warmUp=0",
        "--duration=0",
      ];
      const r = await runTool(trt.trtexec, argv, 600_000);
      trt.peakRss = Math.max(trt.peakRss, r.peakRss);
      if (r.code !== 0 || /&&&& FAILED/.test(r.stdout) || !fs.existsSync(out)) {
        throw new AgentFailure("run-failed", `trtexec failed (exit ${r.code}): ${logTail(r)}`);
      }
      const perf = parseTrtPerformance(r.stdout);
      if (!perf.latency) {
        throw new AgentFailure("run-failed", `trtexec printed no 'Latency:' summary: ${logTail(r)}`);
      }
      const exported = parseTrtOutputs(fs.readFileSync(out, "utf8"));
      const names =
        Array.isArray(h.outputs) && h.outputs.length ? (h.outputs as string[]) : exported.map((o) => o.name);
      const tensors = names.map((n) => {
        const o = exported.find((x) => x.name === n);
        if (!o) {
          throw new AgentFailure(
            "run-failed",
            `trtexec exported no output '${n}' (it has ${exported.map((x) => x.name).join(", ")})`,
          );
        }
        return { name: n, dtype: "float32", dims: o.dims, data: o.values };
      });
      s.runs++;
      const packed = packTensors(tensors);
      const batch = refs[0]?.dims[0] ?? 1;
      const ms = perf.latency.median;
      return {
        header: {
          outputs: packed.refs,
          ms,
          perSampleMs: ms / Math.max(1, batch),
          correct: countCorrect(h, payload, tensors[0]!.data),
          maxRSS: trt.peakRss,
          runtime: "tensorrt",
          gpuComputeMs: perf.gpuCompute?.median ?? null,
          wallMs: r.ms,
        },
        payload: packed.payload,
      };
    } finally {
      for (const f of [...files, out]) fs.rmSync(f, { force: true });
    }
  }

  private async evalBatch(
    h: Header,
    payload: Uint8Array,
  ): Promise<{ header: Record<string, unknown>; payload: Uint8Array }> {
    const s = this.sessions.get(Number(h.session));
    if (!s) throw new AgentFailure("bad-request", `no evaluation session ${String(h.session)}`);
    if (s.kind === "tensorrt") return this.trtBatch(s, h, payload);
    const ort = this.loadOrt();
    const feeds: Record<string, OrtTensor> = {};
    let batch = 1;
    for (const ref of h.inputs as TensorRef[]) {
      feeds[ref.name] = new ort.Tensor(ref.dtype, unpackTensor(ref, payload), ref.dims);
      batch = ref.dims[0] ?? 1;
    }
    const fetches = Array.isArray(h.outputs) && h.outputs.length ? (h.outputs as string[]) : undefined;
    const t0 = process.hrtime.bigint();
    let res: Record<string, OrtTensor>;
    try {
      res = fetches ? await s.session.run(feeds, fetches) : await s.session.run(feeds);
    } catch (e) {
      throw new AgentFailure("run-failed", `onnxruntime run failed: ${(e as Error).message}`);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    s.runs++;
    const names = fetches ?? s.session.outputNames;
    const packed = packTensors(
      names.map((n) => {
        const t = res[n]!;
        return { name: n, dtype: t.type, dims: [...t.dims], data: t.data as ArrayBufferView };
      }),
    );
    return {
      header: {
        outputs: packed.refs,
        ms,
        perSampleMs: ms / Math.max(1, batch),
        correct: countCorrect(h, payload, res[names[0]!]!.data as Float32Array),
        maxRSS: process.resourceUsage().maxRSS * 1024,
        runtime: "onnxruntime",
      },
      payload: packed.payload,
    };
  }
}

/** Top-1 hits of a batch against the labels the host sent along (null without labels). */
function countCorrect(h: Header, payload: Uint8Array, first: ArrayLike<number>): number | null {
  if (!h.labels) return null;
  const labels = unpackTensor(h.labels as TensorRef, payload) as BigInt64Array;
  const k = first.length / labels.length;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (first[i * k + j]! > first[i * k + best]!) best = j;
    if (BigInt(best) === labels[i]) correct++;
  }
  return correct;
}

// ---------------------------------------------------------------------------------------------------------------
// TensorRT through trtexec (NVIDIA's command-line tool on JetPack: /usr/src/tensorrt/bin/trtexec). Unverified on
// real Jetson hardware: the flags and formats follow trtexec's documented options (TensorRT 8.2 … 10.x), and the
// tests drive a stand-in trtexec that implements them with onnxruntime.

interface TrtSession {
  trtexec: string;
  engine: string;
  /** The --shapes spec (dynamic inputs), or null when the model's shapes are fixed. */
  shapes: string | null;
  inputs: { name: string; dims: number[] }[];
  iterations: number;
  /** Largest resident size seen of the trtexec processes (sampled from /proc), bytes. */
  peakRss: number;
}

/** Where trtexec is on a board: a given path, JetPack's /usr/src/tensorrt/bin/trtexec, or PATH. */
export const TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec";

export function findTrtexec(given?: string, env: NodeJS.ProcessEnv = process.env): string {
  const isFile = (p: string): boolean => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  const onPath = (name: string): string | undefined =>
    (env.PATH ?? "")
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, name))
      .find(isFile);
  if (given) {
    const found = given.includes("/") ? (isFile(given) ? given : undefined) : onPath(given);
    if (!found) throw new AgentFailure("trtexec-missing", `trtexec '${given}' is not on the board`);
    return found;
  }
  const found = isFile(TRTEXEC_DEFAULT) ? TRTEXEC_DEFAULT : onPath("trtexec");
  if (!found) {
    throw new AgentFailure(
      "trtexec-missing",
      `trtexec is not on the board (looked for ${TRTEXEC_DEFAULT} and trtexec on PATH); ` +
        "it comes with JetPack's TensorRT (apt-get install tensorrt, or nvidia-jetpack)",
    );
  }
  return found;
}

/** TensorRT's version from trtexec's banner "[TensorRT v8601]" (8.6.1) or "[TensorRT v100300]" (10.3.0). */
export function trtVersion(log: string): string | null {
  const m = /\[TensorRT v(\d+)\]/.exec(log);
  if (!m) return null;
  const n = Number(m[1]);
  return n >= 100000
    ? `${Math.floor(n / 10000)}.${Math.floor(n / 100) % 100}.${n % 100}`
    : `${Math.floor(n / 1000)}.${Math.floor(n / 100) % 10}.${n % 100}`;
}

/** An input name as trtexec's specs want it: wrapped in single quotes when it holds ':' or ','. */
function trtName(name: string): string {
  return /[:,]/.test(name) ? `'${name}'` : name;
}

/** trtexec's --shapes spec, e.g. "x:32x1x28x28". */
export function trtShapesSpec(inputs: { name: string; dims: number[] }[]): string {
  return inputs.map((i) => `${trtName(i.name)}:${i.dims.join("x")}`).join(",");
}

/**
 * The trtexec arguments that build an engine: --int8 for QDQ models (before TensorRT 11 explicit quantization
 * still needs the int8 builder flag; 11 builds strongly typed networks and dropped it), --skipInference
 * (--buildOnly before 8.6), --shapes for dynamic inputs (at build time it sets min = opt = max).
 */
export function trtBuildArgs(
  onnx: string,
  engine: string,
  o: { version: string | null; shapes: string | null; int8: boolean },
): string[] {
  const [major, minor] = (o.version ?? "10.0").split(".").map(Number) as [number, number];
  const args = [`--onnx=${onnx}`, `--saveEngine=${engine}`];
  if (o.int8 && major < 11) args.push("--int8");
  if (o.shapes) args.push(`--shapes=${o.shapes}`);
  args.push(major > 8 || (major === 8 && minor >= 6) ? "--skipInference" : "--buildOnly");
  return args;
}

export interface TrtTiming {
  min: number;
  max: number;
  mean: number;
  median: number;
  /** percentile → ms, e.g. { 90: …, 95: …, 99: … }. */
  percentiles: Record<string, number>;
}

/** The "=== Performance summary ===" lines of trtexec: "Latency: min = … ms, …, median = … ms, percentile(99%) = … ms". */
export function parseTrtPerformance(log: string): {
  latency?: TrtTiming;
  gpuCompute?: TrtTiming;
  throughput?: number;
} {
  const timing = (label: string): TrtTiming | undefined => {
    const line = log
      .split("\n")
      .find((l) => new RegExp(`\\] ${label}: min = |^${label}: min = `).test(l.trim()));
    if (!line) return undefined;
    const num = (k: string): number =>
      Number(new RegExp(`${k} = ([-+0-9.eE]+) ms`).exec(line)?.[1] ?? Number.NaN);
    const percentiles: Record<string, number> = {};
    for (const m of line.matchAll(/percentile\(([0-9.]+)%\) = ([-+0-9.eE]+) ms/g))
      percentiles[m[1]!] = Number(m[2]);
    const t = { min: num("min"), max: num("max"), mean: num("mean"), median: num("median"), percentiles };
    return Number.isFinite(t.median) ? t : undefined;
  };
  const tp = /Throughput: ([0-9.eE+-]+) qps/.exec(log);
  return {
    latency: timing("Latency"),
    gpuCompute: timing("GPU Compute Time"),
    throughput: tp ? Number(tp[1]) : undefined,
  };
}

/**
 * trtexec's --exportOutput file: a JSON list of { "name", "dimensions": "1x10", "values": [ … ] }, where values are
 * printed by C++ streams (six significant digits; "nan", "inf", "-inf" are not JSON, so they are read here).
 */
export function parseTrtOutputs(text: string): { name: string; dims: number[]; values: Float32Array }[] {
  const json = text.replace(/(?<=[[,\s])(-?)(nan|inf)(?=[\s,\]])/gi, (_m, sign: string, what: string) =>
    what.toLowerCase() === "nan" ? '"NaN"' : `"${sign}Infinity"`,
  );
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch (e) {
    throw new AgentFailure(
      "run-failed",
      `trtexec's --exportOutput file is not JSON: ${(e as Error).message}`,
    );
  }
  if (!Array.isArray(list))
    throw new AgentFailure("run-failed", "trtexec's --exportOutput file is not a list");
  return list.map((o: { name?: unknown; dimensions?: unknown; values?: unknown }) => {
    if (typeof o?.name !== "string" || typeof o.dimensions !== "string" || !Array.isArray(o.values)) {
      throw new AgentFailure(
        "run-failed",
        "trtexec's --exportOutput entries need name, dimensions and values",
      );
    }
    const dims = o.dimensions.split("x").map(Number);
    const values = Float32Array.from(o.values as (number | string)[], Number);
    const count = dims.reduce((a, b) => a * b, 1);
    if (dims.some((d) => !Number.isInteger(d) || d < 0) || count !== values.length) {
      throw new AgentFailure(
        "run-failed",
        `trtexec exported '${o.name}' as ${o.dimensions} with ${values.length} values`,
      );
    }
    return { name: o.name, dims, values };
  });
}

function logTail(r: { stdout: string; stderr: string }): string {
  const lines = `${r.stdout}\n${r.stderr}`
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const errors = lines.filter((l) => /\[E\]|error|FAILED/i.test(l));
  return (errors.length ? errors : lines).slice(-4).join(" | ").slice(0, 1500);
}

/** Run a program (argv, no shell) to completion; its resident peak is sampled from /proc while it runs. */
function runTool(
  file: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number; peakRss: number }> {
  return new Promise((resolveRun, reject) => {
    const t0 = Date.now();
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let peakRss = 0;
    const sample = (): void => {
      const st = child.pid ? readText(`/proc/${child.pid}/status`) : null;
      const m = st ? /VmHWM:\s+(\d+) kB/.exec(st) : null;
      if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
    };
    const poll = setInterval(sample, 20);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.once("error", (e) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new AgentFailure("trtexec-missing", `cannot start ${file}: ${e.message}`));
    });
    child.once("exit", () => sample());
    child.once("close", (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolveRun({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        ms: Date.now() - t0,
        peakRss,
      });
    });
  });
}

/** Run the agent on a byte stream until the host says bye or the stream ends. */
export async function serve(
  home: string,
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  opts: { standalone?: boolean } = {},
): Promise<void> {
  const standalone = opts.standalone ?? true;
  const agent = new Agent(home);
  const decoder = new FrameDecoder();
  let chain: Promise<void> = Promise.resolve();
  let done = false;
  const write = (header: Header, payload?: Uint8Array): void => {
    output.write(encodeFrame(header, payload));
  };
  const finish = (): void => {
    if (done) return;
    done = true;
    agent.abortUploads();
  };
  // one of many sessions (serial): the caller handles signals, and a broken stream ends only this session
  if (standalone) {
    for (const sig of ["SIGHUP", "SIGTERM", "SIGINT", "SIGPIPE"] as const) {
      process.on(sig, () => {
        finish();
        process.exit(sig === "SIGPIPE" ? 0 : 1);
      });
    }
  }
  output.on("error", () => {
    finish();
    if (standalone) process.exit(0);
  });
  await new Promise<void>((resolveDone) => {
    input.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        write({ t: "error", code: "bad-frame", message: (e as Error).message });
        finish();
        resolveDone();
        return;
      }
      for (const f of frames) {
        chain = chain.then(async () => {
          if (done) return;
          const id = f.header.id;
          try {
            const reply = await agent.handle(f.header, f.payload);
            if (reply) write({ t: "ok", id, ...reply.header }, reply.payload);
            if (f.header.t === "bye") {
              finish();
              resolveDone();
            }
          } catch (e) {
            const code = e instanceof AgentFailure ? e.code : "internal";
            write({ t: "error", id, code, message: (e as Error).message });
          }
        });
      }
    });
    input.on("end", () => {
      chain.then(() => {
        finish();
        resolveDone();
      });
    });
    input.on("error", () => {
      finish();
      resolveDone();
    });
  });
  await chain;
}

interface Args {
  home: string;
  facts: boolean;
  serial?: string;
  baud: number;
}

function parseArgs(argv: string[]): Args {
  let home = join(os.homedir(), ".qat-agent");
  let facts = false;
  let serial: string | undefined;
  let baud = 115200;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--home" && argv[i + 1] !== undefined) home = argv[++i]!;
    else if (argv[i] === "--facts") facts = true;
    else if (argv[i] === "--serial" && argv[i + 1] !== undefined) serial = argv[++i]!;
    else if (argv[i] === "--baud" && /^\d+$/.test(argv[i + 1] ?? "")) baud = Number(argv[++i]);
    else if (argv[i] === "--version") {
      process.stdout.write(`${AGENT_VERSION} protocol ${PROTOCOL_VERSION}\n`);
      process.exit(0);
    } else {
      process.stderr.write(
        `qat-agent: unknown argument '${argv[i]}' (usage: agent.mjs [--home DIR] [--facts] [--serial TTY [--baud N]])\n`,
      );
      process.exit(2);
    }
  }
  return { home, facts, serial, baud };
}

/**
 * Serve hosts on a tty (a UART, a USB serial gadget) through the serial link layer: serial-link.mjs beside this
 * file (an install), else the build's devices/serial/link.js; @serialport/bindings-cpp from the install's
 * node_modules. Runs until the tty fails (systemd restarts the agent).
 */
async function serveSerial(home: string, path: string, baud: number): Promise<void> {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "serial-link.mjs"), join(here, "..", "serial", "link.js")];
  const file = candidates.find((c) => fs.existsSync(c));
  if (!file) throw new Error(`the serial link module is missing (looked for ${candidates.join(", ")})`);
  const { pathToFileURL } = await import("node:url");
  const link = (await import(pathToFileURL(file).href)) as typeof import("../serial/link.js");
  for (const sig of ["SIGHUP", "SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
  await link.serveTty({
    path,
    baud,
    require: createRequire(join(here, "agent.mjs")),
    serve: (input, output) => serve(home, input, output, { standalone: false }),
    log: (m) => process.stderr.write(`qat-agent: ${m}\n`),
  });
}

export async function main(argv: string[]): Promise<void> {
  const { home, facts, serial, baud } = parseArgs(argv);
  if (facts) {
    process.stdout.write(`${JSON.stringify(collectFacts())}\n`);
    return;
  }
  if (serial) {
    console.log = console.error;
    await serveSerial(home, serial, baud);
    process.exit(0);
  }
  // stdout carries frames only: anything a library prints goes to stderr
  console.log = console.error;
  console.info = console.error;
  console.warn = console.error;
  await serve(home, process.stdin, process.stdout);
  process.stdout.end(() => process.exit(0));
}

const self = fileURLToPath(import.meta.url);
let invoked = "";
try {
  invoked = process.argv[1] ? fs.realpathSync(process.argv[1]) : "";
} catch {
  invoked = "";
}
if (invoked && invoked === fs.realpathSync(self)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`qat-agent: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
