/**
 * What a board needs to serve the agent on a tty, pushed by `setupDevice` into the agent's install folder:
 * the link layer's modules as serial-*.mjs (read from the build or transpiled by the board-program loader; Node
 * built-ins only) and serialport's native binding (@serialport/bindings-cpp with its small JS dependencies and its
 * prebuilt binary for the board's architecture — no compiler on the board).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type BoardModule, type BoardProgram, boardProgram } from "../agent/program.js";
import { DeviceError } from "../errors.js";

/** The link layer's modules and their names in the install folder (the agent imports serial-tty.mjs). */
export const LINK_MODULES: readonly BoardModule[] = [
  "frames",
  "options",
  "handshake",
  "session",
  "link",
  "tty",
].map((name) => ({ source: `serial/${name}`, file: `serial-${name}.mjs` }));

export type LinkProgram = BoardProgram;

let cached: Promise<LinkProgram> | undefined;

/** The link layer's files for a board (cached: the program does not change while qat runs). */
export function linkProgram(): Promise<LinkProgram> {
  cached ??= boardProgram(LINK_MODULES).catch((e: unknown) => {
    cached = undefined;
    throw e;
  });
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
