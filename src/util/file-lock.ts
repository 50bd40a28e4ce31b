/**
 * An exclusive lock held as a file created with O_EXCL that says who holds it (pid, the process's start time, the
 * boot, the host, the operation). Used for an agent home on a board (held for one mutating operation) and for a
 * run folder on the host (held for a whole run, so two runs, or a run and its --resume, never share a folder).
 *
 * A holder killed with -9 leaves its file behind: it is stale when that pid is gone, or now belongs to another
 * process (a different start time), or the machine rebooted since (another boot id). Breaking a stale lock happens
 * under a second O_EXCL file (`<lock>.break`), re-reading the lock there, so two processes that both saw it stale
 * cannot both break it and then each think they hold the new one.
 *
 * Node built-ins only: this module also runs on boards, installed beside the agent.
 */
import * as fs from "node:fs";
import { hostname } from "node:os";

export interface LockHolder {
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

/** True when a process `pid` of this boot is still running (pins and leftovers named by pid use it too). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, another user's
  }
}

export class FileLock {
  private readonly guard: string;
  private holding = false;
  private readonly me: Omit<LockHolder, "op" | "since">;

  constructor(readonly path: string) {
    this.guard = `${path}.break`;
    this.me = { pid: process.pid, start: startTime(process.pid), boot: bootId(), host: hostname() };
  }

  get held(): boolean {
    return this.holding;
  }

  /** Who holds the lock, as its file says (null: nobody, or unreadable). */
  holder(): LockHolder | null {
    const t = readOr(this.path);
    if (!t) return null;
    try {
      return JSON.parse(t) as LockHolder;
    } catch {
      return null;
    }
  }

  /** "pid 123 on host (op, since …)", or `fallback` when the lock file cannot be read. */
  describeHolder(fallback: string): string {
    const h = this.holder();
    return h ? `pid ${h.pid} on ${h.host} (${h.op}, since ${h.since})` : fallback;
  }

  /** Take the lock if it is free (breaking a stale one); false when a live holder has it. */
  tryAcquire(op: string): boolean {
    const holder: LockHolder = { ...this.me, op, since: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(this.path, "wx", 0o644);
        try {
          fs.writeSync(fd, JSON.stringify(holder));
        } finally {
          fs.closeSync(fd);
        }
        this.holding = true;
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      if (!this.breakIfStale()) return false;
    }
    return false;
  }

  release(): void {
    this.holding = false;
    const h = this.holder();
    // never remove a lock that is not ours (a stale-lock break by another process after we were thought dead)
    if (h && h.pid === this.me.pid && h.start === this.me.start) fs.rmSync(this.path, { force: true });
  }

  private stale(text: string | null, mtimeMs: number): boolean {
    let h: LockHolder;
    try {
      h = JSON.parse(text ?? "") as LockHolder;
    } catch {
      // created but not written yet (or cut by a power loss): dead only once it has stayed so for a while
      return Date.now() - mtimeMs > WRITING_GRACE_MS;
    }
    if (h.host !== this.me.host) return false; // a folder shared by two machines: cannot tell, never break it
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
      // another process is breaking it; a guard left by one killed mid-break (milliseconds) is dead after a while
      try {
        if (Date.now() - fs.statSync(this.guard).mtimeMs > WRITING_GRACE_MS)
          fs.rmSync(this.guard, { force: true });
      } catch {
        // gone already
      }
      return false;
    }
    try {
      // re-read under the guard: the lock may have been broken and taken by a live holder since we looked
      const again = fs.statSync(this.path, { throwIfNoEntry: false });
      if (!again) return true;
      if (!this.stale(readOr(this.path), again.mtimeMs)) return false;
      fs.rmSync(this.path, { force: true });
      return true;
    } finally {
      fs.rmSync(this.guard, { force: true });
    }
  }
}
