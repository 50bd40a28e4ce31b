/**
 * The exclusive lock on an agent home: two agents on one board (two hosts, two SSH sessions, a serial agent and an
 * SSH one) must not interleave state writes or prune each other's models. It is a FileLock (src/util/file-lock.ts:
 * an O_EXCL file naming its holder, stale when the holder is gone) held for one mutating operation (deploy,
 * rollback, an upload's placement, install commit and prune), never a whole session, so any number of sessions can
 * read at the same time.
 *
 * Board-side code: Node built-ins and other board modules only; installed beside the agent as lock.mjs.
 */
import { join } from "node:path";
import { FileLock } from "../../src/util/file-lock.js";
import { AgentFailure } from "./protocol.js";

export { pidAlive } from "../../src/util/file-lock.js";

/** How long an operation waits for another agent's operation before giving up (default). */
const DEFAULT_WAIT_MS = 30_000;

export class HomeLock {
  readonly path: string;
  private readonly lock: FileLock;

  constructor(readonly home: string) {
    this.path = join(home, "lock");
    this.lock = new FileLock(this.path);
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
      this.lock.release();
    }
  }

  /** Run `fn` holding the lock if it is free now; undefined (fn not run) when another agent holds it. */
  holdIfFree<T>(op: string, fn: () => T): T | undefined {
    if (!this.tryAcquire(op)) return undefined;
    try {
      return fn();
    } finally {
      this.lock.release();
    }
  }

  /** Who holds the lock, as its file says (null: nobody, or unreadable). */
  holder(): ReturnType<FileLock["holder"]> {
    return this.lock.holder();
  }

  private tryAcquire(op: string): boolean {
    if (this.lock.held) {
      // requests are answered one at a time: a nested hold is a bug in the agent, not another agent
      throw new AgentFailure(
        "internal",
        `the home lock is already held by this agent (while starting ${op})`,
      );
    }
    return this.lock.tryAcquire(op);
  }

  private busy(op: string, waitMs: number): AgentFailure {
    const who = this.lock.describeHolder("another agent");
    return new AgentFailure(
      "busy",
      `${op}: the agent home ${this.home} is locked by ${who}; waited ${Math.round(waitMs / 1000)} s. ` +
        `Try again when it is done; if no agent runs, remove ${this.path}`,
    );
  }
}
