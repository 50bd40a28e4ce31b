/**
 * The board's model store: content-addressed models, the `current` pointer and the deployed history.
 *   models/<sha256>/model.onnx (+ meta.json)   content-addressed models
 *   current -> models/<sha256>                  the deployed model (symlink swapped atomically)
 *   history.json                                deployed versions, oldest first
 *
 * Board-side code: Node built-ins only; installed beside the agent as store.mjs.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { fsyncDir, readText, writeAtomic } from "./files.js";
import { AgentFailure, type CurrentSetReply, type ModelEntry, type RollbackReply } from "./protocol.js";

const SHA = /^[0-9a-f]{64}$/;

export function isSha256(s: string): boolean {
  return SHA.test(s);
}

export class ModelStore {
  constructor(readonly home: string) {
    fs.mkdirSync(join(home, "models"), { recursive: true });
  }

  modelPath(sha: string): string {
    if (!SHA.test(sha)) throw new AgentFailure("bad-request", `'${sha}' is not a sha256 hex digest`);
    return join(this.home, "models", sha, "model.onnx");
  }

  /** The sha256 of a stored model named by its hash or "current"; fails when it is not on the board. */
  resolve(ref: string): string {
    const sha = ref === "current" ? this.current() : ref;
    if (!sha) throw new AgentFailure("no-current", "no model is deployed (current is not set)");
    const p = this.modelPath(sha);
    if (!fs.existsSync(p)) throw new AgentFailure("no-model", `model ${sha} is not on this board`);
    return sha;
  }

  current(): string | null {
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

  history(): string[] {
    const t = readText(join(this.home, "history.json"));
    if (!t) return [];
    try {
      const h = JSON.parse(t) as unknown;
      return Array.isArray(h) ? h.filter((s): s is string => typeof s === "string" && SHA.test(s)) : [];
    } catch {
      return [];
    }
  }

  list(): ModelEntry[] {
    const out: ModelEntry[] = [];
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

  /** Deploy a stored model: point current at it, append it to the history, drop models beyond the last `keep`. */
  setCurrent(sha: string, keep: number): CurrentSetReply {
    this.resolve(sha);
    const previous = this.current();
    const hist = this.history().filter((s) => s !== sha);
    hist.push(sha);
    this.setPointer(sha);
    const kept = Math.max(1, Math.floor(keep) || 1);
    const trimmed = hist.slice(-kept);
    writeAtomic(join(this.home, "history.json"), JSON.stringify(trimmed));
    const removed: string[] = [];
    for (const m of this.list()) {
      const s = String(m.sha256);
      if (!trimmed.includes(s)) {
        fs.rmSync(join(this.home, "models", s), { recursive: true, force: true });
        removed.push(s);
      }
    }
    return { previous, current: sha, history: trimmed, removed };
  }

  /** Point current back at the version deployed before it. */
  rollback(): RollbackReply {
    const cur = this.current();
    const hist = this.history();
    const idx = cur ? hist.lastIndexOf(cur) : hist.length;
    const candidates = hist.slice(0, idx).filter((s) => fs.existsSync(this.modelPath(s)));
    const to = candidates.at(-1);
    if (!to) throw new AgentFailure("no-previous", "there is no earlier version to roll back to");
    this.setPointer(to);
    const next = hist.slice(0, hist.lastIndexOf(to) + 1);
    writeAtomic(join(this.home, "history.json"), JSON.stringify(next));
    return { from: cur, to, history: next };
  }

  private setPointer(sha: string): void {
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
}
