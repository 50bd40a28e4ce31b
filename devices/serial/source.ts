/**
 * What a board needs to serve the agent on a tty, pushed by `setupDevice` into the agent's install folder:
 * the link layer as serial-link.mjs (this build's devices/serial/link.js; Node built-ins only) and serialport's
 * native binding (@serialport/bindings-cpp with its small JS dependencies and its prebuilt binary for the board's
 * architecture — no compiler on the board).
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { DeviceError } from "../errors.js";

export interface LinkProgram {
  code: string;
  sha256: string;
}

let cached: LinkProgram | undefined;

/** The link layer as one ES module for the board (read from the build, or transpiled from link.ts). */
export async function linkProgram(): Promise<LinkProgram> {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  const js = join(here, "link.js");
  let code: string;
  if (existsSync(js)) code = readFileSync(js, "utf8").replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n");
  else {
    const ts = (await import("typescript")).default;
    code = ts.transpileModule(readFileSync(join(here, "link.ts"), "utf8"), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      fileName: "link.ts",
    }).outputText;
  }
  cached = { code, sha256: createHash("sha256").update(code).digest("hex") };
  return cached;
}

/** The prebuilds folder of @serialport/bindings-cpp for a Node arch. */
const PREBUILD_ARCH: Record<string, string> = { arm64: "linux-arm64", x64: "linux-x64", arm: "linux-arm" };

function pkgRoot(name: string, from: string): string {
  const req = createRequire(join(from, "package.json"));
  let dir = dirname(req.resolve(name));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === name) return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the package folder of ${name}`);
    dir = up;
  }
}

function walk(dir: string, base = dir, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, base, out);
    else if (e.isFile()) out.push(relative(base, p));
  }
  return out;
}

/** serialport's binding and its runtime dependencies for a board (paths under node_modules/). */
export function serialRuntimeFiles(arch: string): { path: string; bytes: Uint8Array }[] {
  const prebuild = PREBUILD_ARCH[arch];
  if (!prebuild) {
    throw new DeviceError("serial-unsupported", `serialport has no prebuilt binding for linux/${arch}`, {
      hint: "serial devices need an x64, arm64 or 32-bit ARM board",
    });
  }
  const here = dirname(fileURLToPath(import.meta.url));
  let root: string;
  try {
    root = pkgRoot("@serialport/bindings-cpp", here);
  } catch (e) {
    throw new DeviceError(
      "runtime-missing",
      "the host has no @serialport/bindings-cpp to copy to the board",
      {
        hint: "npm install serialport",
        cause: e,
      },
    );
  }
  const pkgs: [string, string, (rel: string) => boolean][] = [
    [
      "@serialport/bindings-cpp",
      root,
      (r) =>
        r === "package.json" ||
        (r.startsWith("dist/") && r.endsWith(".js")) ||
        (r.startsWith(`prebuilds/${prebuild}/`) && r.includes("glibc")),
    ],
  ];
  const js = (r: string): boolean => r === "package.json" || r.endsWith(".js");
  for (const dep of [
    "@serialport/bindings-interface",
    "@serialport/parser-readline",
    "debug",
    "node-gyp-build",
  ]) {
    pkgs.push([dep, pkgRoot(dep, root), js]);
  }
  pkgs.push(["@serialport/parser-delimiter", pkgRoot("@serialport/parser-delimiter", pkgs[2]![1]), js]);
  pkgs.push(["ms", pkgRoot("ms", pkgs[3]![1]), js]);
  const files: { path: string; bytes: Uint8Array }[] = [];
  for (const [name, dir, keep] of pkgs) {
    for (const rel of walk(dir).filter(keep)) {
      if (!statSync(join(dir, rel)).isFile()) continue;
      files.push({
        path: posix.join("node_modules", name, rel.split("\\").join("/")),
        bytes: readFileSync(join(dir, rel)),
      });
    }
  }
  return files;
}
