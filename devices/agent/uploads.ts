/**
 * Uploads in progress: bytes go to tmp/ (never visible as models or install files), are fsynced, and are checked
 * against the announced size and sha256 before one rename puts them in place. A resumable upload (serial links)
 * keeps what arrived when the link drops, for the next connection to continue from there.
 *
 * Board-side code: Node built-ins only; installed beside the agent as uploads.mjs.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { dirname, join } from "node:path";
import { crashPoint } from "./faults.js";
import { fsyncDir, sha256File, writeAtomic } from "./files.js";
import { AgentFailure, type PutBeginReply, type PutBeginRequest } from "./protocol.js";
import { isSha256 } from "./store.js";

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

export class Uploads {
  private readonly tmpDir: string;
  private uploads = new Map<number, Upload>();

  constructor(home: string) {
    this.tmpDir = join(home, "tmp");
    fs.mkdirSync(this.tmpDir, { recursive: true });
    this.cleanStale();
  }

  /** Remove uploads left by agents that died mid-way (their pid is gone). */
  private cleanStale(): void {
    for (const f of fs.readdirSync(this.tmpDir)) {
      if (/\.resume(\.json)?$/.test(f)) {
        // a resumable upload (serial links): kept for a day for the host to continue it
        const st = fs.statSync(join(this.tmpDir, f));
        if (Date.now() - st.mtimeMs > 24 * 3600_000) fs.rmSync(join(this.tmpDir, f), { force: true });
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
      if (!alive || pid === process.pid) fs.rmSync(join(this.tmpDir, f), { force: true });
    }
  }

  /**
   * Start upload `id` (the put.begin's request id) of a file that goes where `place` says for its kind; nothing
   * to do when that file already holds these bytes.
   */
  begin(req: PutBeginRequest, id: number, place: (kind: "model" | "file") => string): PutBeginReply {
    const sha = String(req.sha256 ?? "");
    const size = Number(req.size);
    if (!isSha256(sha)) throw new AgentFailure("bad-request", "put.begin needs a sha256 hex digest");
    if (!Number.isSafeInteger(size) || size < 0)
      throw new AgentFailure("bad-request", "put.begin needs a size");
    const kind = req.kind === "file" ? "file" : "model";
    const final = place(kind);
    if (fs.existsSync(final) && fs.statSync(final).size === size && sha256File(final) === sha) {
      return { exists: true, path: final };
    }
    const name = typeof req.name === "string" ? req.name : undefined;
    const base = { final, kind, size, sha256: sha, name } as const;
    if (req.resume === true) {
      const upload = this.openResumable(base);
      this.uploads.set(id, upload);
      // never executable, whatever a kept part file's mode was
      fs.chmodSync(upload.tmp, 0o644);
      return { exists: false, offset: upload.received };
    }
    const tmp = join(this.tmpDir, `${sha.slice(0, 16)}-${id}.${process.pid}.part`);
    const fd = fs.openSync(tmp, "w", 0o644);
    this.uploads.set(id, { ...base, fd, tmp, received: 0, hash: createHash("sha256") });
    return { exists: false, offset: 0 };
  }

  /** A resumable upload: named by what it will be, continued from the bytes a previous connection left. */
  private openResumable(u: Pick<Upload, "final" | "kind" | "size" | "sha256" | "name">): Upload {
    const key = createHash("sha256")
      .update(`${u.kind}\0${u.final}\0${u.sha256}\0${u.size}`)
      .digest("hex")
      .slice(0, 32);
    const tmp = join(this.tmpDir, `${key}.resume`);
    for (const o of this.uploads.values()) {
      if (o.tmp === tmp) throw new AgentFailure("busy", `an upload of ${u.sha256} is already in progress`);
    }
    let received = 0;
    try {
      const rec = JSON.parse(fs.readFileSync(`${tmp}.json`, "utf8")) as {
        sha256?: string;
        received?: number;
      };
      if (rec.sha256 === u.sha256 && Number.isSafeInteger(rec.received)) {
        received = Math.min(rec.received!, fs.statSync(tmp).size, u.size);
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
    return { ...u, fd, tmp, received, hash, resumable: true };
  }

  /** Bytes of upload `put`; an overflow fails the upload, reported at its end. */
  chunk(put: number, payload: Uint8Array): void {
    const u = this.uploads.get(put);
    if (!u) return; // the begin failed and was answered; drop its chunks
    if (u.failed) return;
    if (u.received + payload.length > u.size) {
      u.failed = new AgentFailure("size-mismatch", `more bytes than the announced ${u.size}`);
      return;
    }
    let off = 0;
    while (off < payload.length)
      off += fs.writeSync(u.fd, payload, off, payload.length - off, u.received + off);
    u.hash.update(payload);
    u.received += payload.length;
  }

  /** Finish upload `id`: check size and sha256, then rename it into place. */
  end(id: number): { path: string; sha256: string } {
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
      if (u.kind === "model") crashPoint("after-upload");
      return { path: u.final, sha256: got };
    } catch (e) {
      if (u.fd >= 0) fs.closeSync(u.fd);
      fs.rmSync(u.tmp, { force: true });
      throw e;
    }
  }

  abort(id: number): void {
    const u = this.uploads.get(id);
    if (u) {
      fs.closeSync(u.fd);
      fs.rmSync(u.tmp, { force: true });
      this.uploads.delete(id);
    }
  }

  /** Remove this process's uploads in progress (connection lost, shutdown); keep resumable ones' good bytes. */
  abortAll(): void {
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
}
