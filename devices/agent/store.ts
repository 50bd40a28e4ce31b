/**
 * The board's model store: content-addressed models, and the deploy state (current + history, state.ts).
 *   models/<sha256>/model.onnx (+ meta.json)   content-addressed models
 *   models/<sha256>/pin.<pid>                  an agent's upload not deployed yet: never pruned while it lives
 *   state.json                                 current and the deployed history, replaced whole (state.ts)
 *   current -> models/<sha256>                  derived from state.json, for programs on the board
 *
 * Every method that changes something runs holding the home lock (lock.ts; the caller takes it). Reading needs
 * no lock: state.json is only ever replaced by a rename.
 *
 * The state is read through `view()`, which also recovers from crashes and damage: a model counts only when its
 * file is there and hashes to its name (re-hashed only when the file changed since the last check), history is
 * cut after current (an older agent killed during a rollback), current is appended when history lacks it (an older
 * agent killed between moving its pointer and writing history.json), and a current that is not complete falls
 * back to the last complete model of the history.
 *
 * Board-side code: Node built-ins only; installed beside the agent as store.mjs.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { crashPoint } from "./faults.js";
import { fsyncDir, sha256File } from "./files.js";
import { pidAlive } from "./lock.js";
import { AgentFailure, type CurrentSetReply, type ModelEntry, type RollbackReply } from "./protocol.js";
import {
  cleanTemps,
  type DeployState,
  isSha256,
  readState,
  removeLegacy,
  sameState,
  syncLink,
  writeState,
} from "./state.js";

export { isSha256 } from "./state.js";

const TRASH = ".trash.";

export class ModelStore {
  private readonly models: string;
  /** Models this agent pinned (uploaded, not deployed yet), unpinned when deployed or when the session ends. */
  private readonly pins = new Set<string>();

  constructor(readonly home: string) {
    this.models = join(home, "models");
    fs.mkdirSync(this.models, { recursive: true });
  }

  modelPath(sha: string): string {
    if (!isSha256(sha)) throw new AgentFailure("bad-request", `'${sha}' is not a sha256 hex digest`);
    return join(this.models, sha, "model.onnx");
  }

  /** The sha256 of a stored model named by its hash or "current"; fails when it is not on the board. */
  resolve(ref: string): string {
    const sha = ref === "current" ? this.view().current : ref;
    if (!sha) throw new AgentFailure("no-current", "no model is deployed (current is not set)");
    const p = this.modelPath(sha);
    if (!fs.existsSync(p)) throw new AgentFailure("no-model", `model ${sha} is not on this board`);
    return sha;
  }

  current(): string | null {
    return this.view().current;
  }

  history(): string[] {
    return this.view().history;
  }

  /** The deploy state with every crash and damage repaired (see the module comment); written by `recover`. */
  view(): DeployState {
    const { state } = readState(this.home);
    const stamps = { ...state.stamps };
    let history = state.history.filter((s, i) => state.history.indexOf(s) === i);
    if (state.current) {
      const at = history.lastIndexOf(state.current);
      history = at >= 0 ? history.slice(0, at + 1) : [...history, state.current];
    }
    history = history.filter((s) => this.complete(s, stamps));
    for (const k of Object.keys(stamps)) if (!history.includes(k)) delete stamps[k];
    return { current: history.at(-1) ?? null, history, stamps };
  }

  /** True when model `sha`'s file is there and hashes to `sha`; notes the file's stamp in `stamps` when it does. */
  private complete(sha: string, stamps: Record<string, string>): boolean {
    const p = join(this.models, sha, "model.onnx");
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      return false;
    }
    if (!st.isFile()) return false;
    const stamp = `${st.ino}:${st.size}:${Math.round(st.mtimeMs)}`;
    if (stamps[sha] === stamp) return true;
    if (sha256File(p) !== sha) return false;
    stamps[sha] = stamp;
    return true;
  }

  /**
   * On agent start, holding the lock: drop what killed agents left (temporary state files, half-pruned models,
   * pins of dead agents), then write the repaired state back (migrating the older layout) and sync the link.
   */
  recover(): { migrated: boolean; repaired: boolean } {
    cleanTemps(this.home);
    for (const d of fs.readdirSync(this.models)) {
      if (d.startsWith(TRASH)) fs.rmSync(join(this.models, d), { recursive: true, force: true });
      else if (isSha256(d)) this.dropDeadPins(d);
    }
    const { state, source } = readState(this.home);
    const fixed = this.view();
    const repaired = source !== "state" ? source === "legacy" : !sameState(state, fixed);
    if (repaired) writeState(this.home, fixed);
    syncLink(this.home, fixed.current);
    if (source === "state" || repaired) removeLegacy(this.home);
    return { migrated: source === "legacy", repaired };
  }

  private dropDeadPins(sha: string): void {
    const dir = join(this.models, sha);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const f of names) {
      const m = /^pin\.(\d+)$/.exec(f);
      if (m && !pidAlive(Number(m[1]))) fs.rmSync(join(dir, f), { force: true });
    }
  }

  /** Keep model `sha` from being pruned while this agent lives (it was uploaded to be deployed or evaluated). */
  pin(sha: string): void {
    fs.writeFileSync(join(this.models, sha, `pin.${process.pid}`), "");
    this.pins.add(sha);
  }

  unpin(sha: string): void {
    if (this.pins.delete(sha)) fs.rmSync(join(this.models, sha, `pin.${process.pid}`), { force: true });
  }

  unpinAll(): void {
    for (const sha of [...this.pins]) this.unpin(sha);
  }

  private pinnedByLiveAgent(sha: string): boolean {
    let names: string[];
    try {
      names = fs.readdirSync(join(this.models, sha));
    } catch {
      return false;
    }
    return names.some((f) => {
      const m = /^pin\.(\d+)$/.exec(f);
      return m !== null && pidAlive(Number(m[1]));
    });
  }

  list(): ModelEntry[] {
    const out: ModelEntry[] = [];
    for (const d of fs.readdirSync(this.models)) {
      if (!isSha256(d)) continue;
      let st: fs.Stats;
      try {
        st = fs.statSync(join(this.models, d, "model.onnx"));
      } catch {
        continue;
      }
      let meta: Record<string, unknown> = {};
      try {
        meta = JSON.parse(fs.readFileSync(join(this.models, d, "meta.json"), "utf8")) as Record<
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

  /**
   * Deploy a stored model (holding the lock; the runtime has loaded it already): one state write makes it current
   * and appends it to the history, then the models beyond the last `keep` (and unpinned leftovers) are removed.
   */
  setCurrent(sha: string, keep: number): CurrentSetReply {
    const s = this.view();
    if (!this.complete(sha, s.stamps)) {
      throw new AgentFailure("no-model", `model ${sha} is not on this board (or its file no longer matches)`);
    }
    const kept = Math.max(1, Math.floor(keep) || 1);
    const history = [...s.history.filter((x) => x !== sha), sha].slice(-kept);
    const stamps = Object.fromEntries(Object.entries(s.stamps).filter(([k]) => history.includes(k)));
    crashPoint("before-state-write");
    writeState(this.home, { current: sha, history, stamps });
    crashPoint("after-state-write");
    syncLink(this.home, sha);
    removeLegacy(this.home);
    this.unpin(sha);
    return { previous: s.current, current: sha, history, removed: this.prune(history) };
  }

  /**
   * Remove the models not in `keep` and not pinned by a live agent. Each is first renamed out of models/ (one
   * atomic step), so a crash mid-way leaves either the whole model or a .trash folder that the next start removes.
   */
  private prune(keep: string[]): string[] {
    const removed: string[] = [];
    for (const d of fs.readdirSync(this.models)) {
      if (!isSha256(d) || keep.includes(d) || this.pinnedByLiveAgent(d)) continue;
      const trash = join(this.models, `${TRASH}${d}.${process.pid}`);
      fs.renameSync(join(this.models, d), trash);
      fsyncDir(this.models);
      removed.push(d);
      if (removed.length === 1) crashPoint("during-prune");
      fs.rmSync(trash, { recursive: true, force: true });
    }
    return removed;
  }

  /** Point current back at the version deployed before it (holding the lock). */
  rollback(): RollbackReply {
    const s = this.view();
    const idx = s.current ? s.history.lastIndexOf(s.current) : s.history.length;
    const to = s.history[idx - 1];
    if (!to) throw new AgentFailure("no-previous", "there is no earlier version to roll back to");
    const history = s.history.slice(0, idx);
    const stamps = Object.fromEntries(Object.entries(s.stamps).filter(([k]) => history.includes(k)));
    writeState(this.home, { current: to, history, stamps });
    syncLink(this.home, to);
    removeLegacy(this.home);
    return { from: s.current, to, history };
  }
}
