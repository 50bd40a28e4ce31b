/**
 * The agent's install: the folder its modules run from (home/install/<key>/, with the runtime in node_modules/),
 * and installed.json, which says which install is active. Setup commits an install last, so an interrupted setup
 * is never taken for a finished one.
 *
 * Board-side code: Node built-ins only; installed beside the agent as install.mjs.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { readText, writeAtomic } from "./files.js";
import { AgentFailure, type InstalledInfo } from "./protocol.js";

export class Install {
  /** The folder the agent's modules run from (they are all installed side by side). */
  readonly dir = dirname(fileURLToPath(import.meta.url));

  constructor(readonly home: string) {}

  /** A require() that resolves packages from the install's node_modules. */
  require(): NodeJS.Require {
    return createRequire(join(this.dir, "agent.mjs"));
  }

  /** The committed install, or null before the first setup finished. */
  info(): InstalledInfo | null {
    const t = readText(join(this.home, "installed.json"));
    if (!t) return null;
    try {
      return JSON.parse(t) as InstalledInfo;
    } catch {
      return null;
    }
  }

  commit(info: InstalledInfo): InstalledInfo {
    if (typeof info !== "object" || info === null)
      throw new AgentFailure("bad-request", "install.commit needs info");
    const record = { ...info, installDir: this.dir, installedAt: new Date().toISOString() };
    writeAtomic(join(this.home, "installed.json"), `${JSON.stringify(record, null, 2)}\n`);
    return record;
  }

  /** Remove the installs other than the running one. */
  prune(): string[] {
    const removed: string[] = [];
    const root = join(this.home, "install");
    for (const d of fs.existsSync(root) ? fs.readdirSync(root) : []) {
      const p = join(root, d);
      if (resolve(p) !== resolve(this.dir)) {
        fs.rmSync(p, { recursive: true, force: true });
        removed.push(d);
      }
    }
    return removed;
  }

  /** Where an uploaded install file goes; refuses paths that leave the install folder. */
  path(rel: string): string {
    const norm = normalize(rel);
    if (!rel || isAbsolute(rel) || norm.startsWith("..") || norm.split(sep).includes("..")) {
      throw new AgentFailure(
        "bad-request",
        `refusing file path '${rel}' (must be relative, inside the install)`,
      );
    }
    return join(this.dir, norm);
  }
}
