/**
 * Fetching files out of npm packages into the user cache with the ordinary npm client (`npm pack` checks the
 * registry's integrity hash), for what runs on boards but is not one of qat's dependencies: the arm64 Node.js
 * binary of the emulated board, and onnxruntime-web for boards whose glibc is too old for onnxruntime-node.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { DeviceError } from "./errors.js";

const run = promisify(execFile);

/** The qat cache folder: $XDG_CACHE_HOME/qat, else ~/.cache/qat. */
export function cacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg?.startsWith("/") ? xdg : join(homedir(), ".cache"), "qat");
}

export interface FetchOptions {
  /** Cache folder (default cacheDir()). */
  cacheDir?: string;
  /** The npm client (default "npm" on PATH). */
  npm?: string;
}

/**
 * Files of `name@version` (paths inside the package, e.g. "bin/node"), cached under
 * `<cacheDir>/npm/<name>/<version>/`. Returns that folder. Concurrent callers end up with one complete copy.
 */
export async function fetchPackageFiles(
  name: string,
  version: string,
  files: string[],
  opts: FetchOptions = {},
): Promise<string> {
  if (!/^[a-z0-9@/._-]+$/.test(name) || !/^\d+\.\d+\.\d+$/.test(version)) {
    throw new DeviceError("bad-package", `'${name}@${version}' is not a package name and exact version`, {
      exitCode: 2,
    });
  }
  const final = join(opts.cacheDir ?? cacheDir(), "npm", name, version);
  if (files.every((f) => existsSync(join(final, f)))) return final;
  mkdirSync(dirname(final), { recursive: true });
  const work = mkdtempSync(`${final}.fetch-`);
  try {
    let out: { stdout: string };
    try {
      out = await run(
        opts.npm ?? "npm",
        ["pack", `${name}@${version}`, "--json", "--pack-destination", work],
        {
          cwd: work,
          maxBuffer: 64 << 20,
          env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false" },
        },
      );
    } catch (e) {
      const err = e as Error & { stderr?: string };
      const why = (err.stderr || err.message).trim().split("\n").slice(-3).join(" ");
      throw new DeviceError("fetch-failed", `npm pack ${name}@${version} failed: ${why}`, {
        hint: `check that the npm registry is reachable (npm ping), or put the files ${files.join(", ")} into ${final}`,
        cause: e,
      });
    }
    const info = JSON.parse(out.stdout.slice(out.stdout.indexOf("["))) as {
      filename: string;
      integrity: string;
    }[];
    const tgz = join(work, info[0]!.filename);
    await run("tar", ["-xzf", tgz, "-C", work, ...files.map((f) => `package/${f}`)]);
    writeFileSync(
      join(work, "package", "SOURCE.json"),
      `${JSON.stringify({ package: `${name}@${version}`, integrity: info[0]!.integrity, fetchedAt: new Date().toISOString() }, null, 2)}\n`,
    );
    rmSync(final, { recursive: true, force: true });
    try {
      renameSync(join(work, "package"), final);
    } catch (e) {
      if (!files.every((f) => existsSync(join(final, f)))) throw e; // another process finished first
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return final;
}
