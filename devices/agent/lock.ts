/**
 * The exclusive lock on an agent home: two agents on one board (two hosts, two SSH sessions, a serial agent and an
 * SSH one) must not interleave state writes or prune each other's models. The lock is a file created with O_EXCL
 * that says who holds it (pid, the process's start time, the boot, the host, the operation); it is held for one
 * mutating operation (deploy, rollback, an upload's placement, install commit and prune), never a whole session,
 * so any number of sessions can read at the same time.
 *
 * A holder killed with -9 leaves its file behind: it is stale when that pid is gone, or now belongs to another
 * process (a different start time), or the board rebooted since (another boot id). Breaking a stale lock happens
 * under a second O_EXCL file (lock.break), re-reading the lock there, so two agents that both saw it stale cannot
 * both break it and then each think they hold the new one.
 *
 * Board-side code: Node built-ins only; installed beside the agent as lock.mjs.
 */
import * as fs from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { AgentFailure } from "./protocol.js";

interface Holder {
  pid: number;
  /** The process's start time (clock ticks since boot, /proc/<pid>/stat field 22): tells a reused pid apart. */
  start: string | null;
  boot: string | null;
  host: string;
  op: string;
  since: string;
}

/** How long a lock file may stay unreadable (being written) or a break guard may stay before it counts as dead. */
const WRITING_GRACE_MS = 10_000;
/** How long an operation waits for another agent's operation before giving up (default). */
const DEFAULT_WAIT_MS = 30_000;

function readOr(path: string): string | null {
  try {
    return fs.readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

/** A process's start time from /proc (Linux), or null where there is no /proc. */
function startTime(pid: number): string | null {
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return null;
  // the command name (field 2) may hold spaces and parentheses: fields after the last ')' start at field 3
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return rest[19] ?? null;
}

function bootId(): string | null {
  return readOr("/proc/sys/kernel/random/boot_id");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, another user's
  }
}

/** True when a process `pid` of this boot is still running (pins and leftovers named by pid use it too). */
export function pidAlive(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0 && alive(pid);
}

export class HomeLock {
  readonly path: string;
  private readonly guard: string;
  private held = false;
  private readonly me: Omit<Holder, "op" | "since">;

  constructor(readonly home: string) {
    this.path = join(home, "lock");
    this.guard = join(home, "lock.break");
    this.me = { pid: process.pid, start: startTime(process.pid), boot: bootId(), host: hostname() };
  }

  /** Run `fn` holding the lock, waiting up to `waitMs` for another agent's operation to end. */
  async hold<T>(op: string, fn: () => T | Promise<T>, waitMs = DEFAULT_WAIT_MS): Promise<T> {
    const deadline = Date.now() + waitMs;
    for (let delay = 5; !this.tryAcquire(op); delay = Math.min(delay * 2, 200)) {
      if (Date.now() >= deadline) throw this.busy(op, waitMs);
      await new Promise((r) => setTimeout(r, delay));
    }
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /** Run `fn` holding the lock if it is free now; undefined (fn not run) when another agent holds it. */
  holdIfFree<T>(op: string, fn: () => T): T | undefined {
    if (!this.tryAcquire(op)) return undefined;
    try {
      return fn();
    } finally {
      this.release();
    }
  }

  /** Who holds the lock, as its file says (null: nobody, or unreadable). */
  holder(): Holder | null {
    const t = readOr(this.path);
    if (!t) return null;
    try {
      return JSON.parse(t) as Holder;
    } catch {
      return null;
    }
  }

  private tryAcquire(op: string): boolean {
    if (this.held) {
      // requests are answered one at a time: a nested hold is a bug in the agent, not another agent
      throw new AgentFailure(
        "internal",
        `the home lock is already held by this agent (while starting ${op})`,
      );
    }
    const holder: Holder = { ...this.me, op, since: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(this.path, "wx", 0o644);
        try {
          fs.writeSync(fd, JSON.stringify(holder));
        } finally {
          fs.closeSync(fd);
        }
        this.held = true;
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      if (!this.breakIfStale()) return false;
    }
    return false;
  }

  private release(): void {
    this.held = false;
    const h = this.holder();
    // never remove a lock that is not ours (a stale-lock break by another agent after we were thought dead)
    if (h && h.pid === this.me.pid && h.start === this.me.start) fs.rmSync(this.path, { force: true });
  }

  private stale(text: string | null, mtimeMs: number): boolean {
    let h: Holder;
    try {
      h = JSON.parse(text ?? "") as Holder;
    } catch {
      // created but not written yet (or cut by a power loss): dead only once it has stayed so for a while
      return Date.now() - mtimeMs > WRITING_GRACE_MS;
    }
    if (h.host !== this.me.host) return false; // a home shared by two machines: cannot tell, never break it
    if (h.boot && this.me.boot && h.boot !== this.me.boot) return true;
    if (!pidAlive(Number(h.pid))) return true;
    return h.start !== null && this.me.start !== null && startTime(Number(h.pid)) !== h.start;
  }

  /** Remove the lock when its holder is gone; true when it was removed (or had already gone). */
  private breakIfStale(): boolean {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.path);
    } catch {
      return true;
    }
    if (!this.stale(readOr(this.path), st.mtimeMs)) return false;
    try {
      fs.closeSync(fs.openSync(this.guard, "wx", 0o644));
    } catch {
      // another agent is breaking it; a guard left by one killed mid-break (milliseconds) is dead after a while
      try {
        if (Date.now() - fs.statSync(this.guard).mtimeMs > WRITING_GRACE_MS)
          fs.rmSync(this.guard, { force: true });
      } catch {
        // gone already
      }
      return false;
    }
    try {
      // re-read under the guard: the lock may have been broken and taken by a live agent since we looked
      const again = fs.statSync(this.path, { throwIfNoEntry: false });
      if (!again) return true;
      if (!this.stale(readOr(this.path), again.mtimeMs)) return false;
      fs.rmSync(this.path, { force: true });
      return true;
    } finally {
      fs.rmSync(this.guard, { force: true });
    }
  }

  private busy(op: string, waitMs: number): AgentFailure {
    const h = this.holder();
    const who = h ? `pid ${h.pid} on ${h.host} (${h.op}, since ${h.since})` : "another agent";
    return new AgentFailure(
      "busy",
      `${op}: the agent home ${this.home} is locked by ${who}; waited ${Math.round(waitMs / 1000)} s. ` +
        `Try again when it is done; if no agent runs, remove ${this.path}`,
    );
  }
}
