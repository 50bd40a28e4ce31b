/**
 * The agent's install: the folder its modules run from (home/install/<key>/, with the runtime in node_modules/),
 * and installed.json, which says which install is active. Setup commits an install last, so an interrupted setup
 * is never taken for a finished one.
 *
 * Board-side code: Node built-ins only; installed beside the agent as install.mjs.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readText, writeAtomic } from "./files.js";
import { AgentFailure, type InstalledInfo } from "./protocol.js";

/** The packages whose files setup pushes into node_modules/ (runtime-files.ts, serial/source.ts). */
export const RUNTIME_PACKAGES = [
  "onnxruntime-node",
  "onnxruntime-common",
  "onnxruntime-web",
  "@serialport/bindings-cpp",
  "@serialport/bindings-interface",
  "@serialport/parser-readline",
  "@serialport/parser-delimiter",
  "debug",
  "node-gyp-build",
  "ms",
];
/** The serial link's modules, installed as serial-<name>.mjs (serial/source.ts LINK_MODULES). */
export const SERIAL_MODULES = ["frames", "options", "handshake", "session", "link", "tty"];

const SEGMENT = /^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*$/;

/** True when `rel` names a file an upload may write: see `Install.path`. */
export function allowedInstallFile(rel: string): boolean {
  if (typeof rel !== "string" || rel.length > 400 || rel.includes("\\")) return false;
  if (SERIAL_MODULES.some((m) => rel === `serial-${m}.mjs`)) return true;
  const pkg = RUNTIME_PACKAGES.find((p) => rel.startsWith(`node_modules/${p}/`));
  if (!pkg) return false;
  const rest = rel.slice(`node_modules/${pkg}/`.length).split("/");
  return rest.length > 0 && rest.every((s) => SEGMENT.test(s));
}

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
      // older installs recorded their folder: it stays on the board
      const { installDir: _dir, ...info } = JSON.parse(t) as InstalledInfo;
      return info;
    } catch {
      return null;
    }
  }

  commit(info: InstalledInfo): InstalledInfo {
    if (typeof info !== "object" || info === null)
      throw new AgentFailure("bad-request", "install.commit needs info");
    // the install's key, never its path: installed.json goes back to the host in hello
    const { installDir: _dir, ...rest } = info;
    const record = { ...rest, installedAt: new Date().toISOString() };
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

  /**
   * Where an uploaded install file goes. Only a fixed list of names is accepted: files of the runtime packages
   * under node_modules/ and the serial link's modules; never the agent's own modules, never a path that leaves the
   * install folder, never a hidden file. Uploads are written 0644 (uploads.ts), so nothing arriving is executable.
   */
  path(rel: string): string {
    if (!allowedInstallFile(rel)) {
      throw new AgentFailure(
        "bad-request",
        `refusing file '${rel.slice(0, 200)}': uploads go only to the runtime's files (node_modules/{${RUNTIME_PACKAGES.join(",")}}/…) and ${SERIAL_MODULES.map((m) => `serial-${m}.mjs`).join(", ")}`,
      );
    }
    return join(this.dir, normalize(rel));
  }
}
