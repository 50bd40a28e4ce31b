/**
 * The deploy state of a board: ONE file, state.json, holding the current model and the deploy history together, so
 * no crash can leave one moved without the other. It is replaced whole (write a temporary file, fsync, rename,
 * fsync the folder): after a kill -9 or a power cut it is the old state or the new one, never a mix.
 *
 *   { "format": 1, "current": "<sha256>", "history": ["<sha256>", …], "stamps": { "<sha256>": "ino:size:mtime" } }
 *
 * history is oldest first and ends with current. stamps record the file a model's sha256 was last checked on, so
 * an agent start re-hashes a model only when its file changed.
 *
 * The `current` link (current -> models/<sha256>) is kept for programs on the board that load the deployed model;
 * it is derived from state.json after each write and repaired on start, and the agent never reads it — except to
 * migrate the layout of older agents (a `current` pointer and history.json, no state.json).
 *
 * Board-side code: Node built-ins only; installed beside the agent as state.mjs.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { fsyncDir, readText, writeAtomic } from "./files.js";

export const STATE_FILE = "state.json";
const LEGACY_HISTORY = "history.json";
const LINK = "current";

const SHA = /^[0-9a-f]{64}$/;

export function isSha256(s: unknown): s is string {
  return typeof s === "string" && SHA.test(s);
}

export interface DeployState {
  current: string | null;
  history: string[];
  stamps: Record<string, string>;
}

/** Where a state came from: state.json, the older agents' pointer + history.json, or nothing (a new board). */
export type StateSource = "state" | "legacy" | "empty";

function parseState(text: string): DeployState | null {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof o !== "object" || o === null || o.format !== 1 || !Array.isArray(o.history)) return null;
  const stamps: Record<string, string> = {};
  if (o.stamps && typeof o.stamps === "object") {
    for (const [k, v] of Object.entries(o.stamps)) if (isSha256(k) && typeof v === "string") stamps[k] = v;
  }
  return { current: isSha256(o.current) ? o.current : null, history: o.history.filter(isSha256), stamps };
}

/** The model the `current` link (or, where there are no symlinks, the file holding a hash) names. */
function readLink(home: string): string | null {
  const p = join(home, LINK);
  let target: string;
  try {
    target = fs.lstatSync(p).isSymbolicLink() ? fs.readlinkSync(p) : fs.readFileSync(p, "utf8").trim();
  } catch {
    return null;
  }
  const sha = target.split(/[\\/]/).filter(Boolean).pop() ?? "";
  return isSha256(sha) ? sha : null;
}

/** The older agents' state: the pointer and history.json (which the pointer may be ahead of, see the store). */
function readLegacy(home: string): DeployState | null {
  const current = readLink(home);
  const t = readText(join(home, LEGACY_HISTORY), 1 << 20);
  let history: string[] = [];
  try {
    const h = t ? (JSON.parse(t) as unknown) : [];
    history = Array.isArray(h) ? h.filter(isSha256) : [];
  } catch {
    history = [];
  }
  if (!current && history.length === 0) return null;
  return { current, history, stamps: {} };
}

/**
 * The stored state as written; a missing or unreadable state.json falls back to the older layout (the link is
 * also the last durable current of this layout, written right after each state).
 */
export function readState(home: string): { state: DeployState; source: StateSource } {
  const text = readText(join(home, STATE_FILE), 1 << 20);
  const state = text === null ? null : parseState(text);
  if (state) return { state, source: "state" };
  const legacy = readLegacy(home);
  if (legacy) return { state: legacy, source: "legacy" };
  return { state: { current: null, history: [], stamps: {} }, source: "empty" };
}

export function writeState(home: string, s: DeployState): void {
  const body = { format: 1, current: s.current, history: s.history, stamps: s.stamps };
  writeAtomic(join(home, STATE_FILE), `${JSON.stringify(body, null, 1)}\n`);
}

export function sameState(a: DeployState, b: DeployState): boolean {
  return (
    a.current === b.current &&
    JSON.stringify(a.history) === JSON.stringify(b.history) &&
    JSON.stringify(Object.entries(a.stamps).sort()) === JSON.stringify(Object.entries(b.stamps).sort())
  );
}

/** Make the `current` link name `sha` (remove it for none); swapped with one rename. */
export function syncLink(home: string, sha: string | null): void {
  const p = join(home, LINK);
  if (readLink(home) === sha && (sha !== null || !fs.existsSync(p))) return;
  if (sha === null) {
    fs.rmSync(p, { force: true });
    fsyncDir(home);
    return;
  }
  const tmp = `${p}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  try {
    fs.symlinkSync(join("models", sha), tmp);
  } catch {
    fs.writeFileSync(tmp, sha); // no symlinks here: a file holding the hash, swapped the same way
  }
  fs.renameSync(tmp, p);
  fsyncDir(home);
}

/** Remove what only the older layout used, once state.json holds its content. */
export function removeLegacy(home: string): void {
  fs.rmSync(join(home, LEGACY_HISTORY), { force: true });
}

/**
 * Remove temporary files of state writes a killed agent left (state.json.<pid>.tmp and the like). Call only
 * holding the home lock: every such write happens under it, so any temporary file found then is a dead one's.
 */
export function cleanTemps(home: string): string[] {
  const removed: string[] = [];
  const prefixes = [STATE_FILE, LINK, LEGACY_HISTORY].map((n) => `${n}.`);
  for (const f of fs.readdirSync(home)) {
    if (f.endsWith(".tmp") && prefixes.some((p) => f.startsWith(p))) {
      fs.rmSync(join(home, f), { force: true });
      removed.push(f);
    }
  }
  return removed;
}
