/**
 * The runtime files setup pushes to a board: onnxruntime-node's JS and its native binaries for the board's arch
 * only (or the onnxruntime-web fallback for boards whose glibc is too old), onnxruntime-common, and what serves the
 * agent on a tty (the serial link's modules and serialport's binding). All copied from the host's own packages, so
 * boards without internet work.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, posix, relative } from "node:path";
import type { Backend } from "./boards.js";
import { DeviceError } from "./errors.js";
import { type FetchOptions, fetchPackageFiles } from "./fetch.js";
import { linkProgram, serialRuntimeFiles } from "./serial/source.js";

const requireHere = createRequire(import.meta.url);

function packageRoot(name: string, from?: string): string {
  const req = from ? createRequire(join(from, "package.json")) : requireHere;
  let dir = dirname(req.resolve(name));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === name) return dir;
    } catch {
      // keep climbing
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the package folder of ${name}`);
    dir = up;
  }
}

export function hostRuntimeVersion(backend: Backend = "onnxruntime-node"): string {
  try {
    return (
      JSON.parse(readFileSync(join(packageRoot(backend), "package.json"), "utf8")) as { version: string }
    ).version;
  } catch (e) {
    throw new DeviceError("runtime-missing", `the host has no ${backend} package to copy to the board`, {
      hint: `npm install ${backend}`,
      cause: e,
    });
  }
}

export interface RuntimeFile {
  /** Path inside the install folder, e.g. node_modules/onnxruntime-node/dist/index.js. */
  path: string;
  bytes: Uint8Array;
}

function walk(dir: string, keep: (rel: string) => boolean, base = dir, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, keep, base, out);
    else if (e.isFile() && keep(relative(base, p))) out.push(p);
  }
  return out;
}

/** What of onnxruntime-web runs under Node: its Node entry, the threaded-SIMD wasm and its loader. */
export const WEB_RUNTIME_FILES = [
  "package.json",
  "dist/ort.node.min.js",
  "dist/ort-wasm-simd-threaded.mjs",
  "dist/ort-wasm-simd-threaded.wasm",
];

/**
 * The onnxruntime-web package folder to copy to boards that cannot run onnxruntime-node (glibc < 2.28): the
 * host's own when installed, else the files above fetched with `npm pack` (same version as onnxruntime-node)
 * into the cache.
 */
export async function webRuntimeRoot(opts: FetchOptions = {}): Promise<string> {
  try {
    return packageRoot("onnxruntime-web");
  } catch {
    return fetchPackageFiles(
      "onnxruntime-web",
      hostRuntimeVersion("onnxruntime-node"),
      WEB_RUNTIME_FILES,
      opts,
    );
  }
}

/** The runtime files to push for a board: the package's JS, its native binaries for the board's arch only. */
export async function runtimeFiles(
  arch: string,
  backend: Backend = "onnxruntime-node",
  opts: FetchOptions = {},
): Promise<RuntimeFile[]> {
  const files: RuntimeFile[] = [];
  const add = (pkgDir: string, name: string, keep: (rel: string) => boolean): void => {
    for (const p of walk(pkgDir, keep)) {
      files.push({
        path: posix.join("node_modules", name, relative(pkgDir, p).split("\\").join("/")),
        bytes: readFileSync(p),
      });
    }
  };
  const nodePkg = packageRoot("onnxruntime-node");
  const common = packageRoot("onnxruntime-common", nodePkg);
  if (backend === "onnxruntime-node") {
    const binDir = `bin/napi-v6/linux/${arch}`;
    try {
      statSync(join(nodePkg, binDir));
    } catch {
      throw new DeviceError(
        "runtime-missing",
        `onnxruntime-node on the host has no binaries for linux/${arch} (${join(nodePkg, binDir)})`,
        {
          hint: "reinstall onnxruntime-node (npm ci); 32-bit ARM has no onnxruntime-node build",
        },
      );
    }
    add(
      nodePkg,
      backend,
      (rel) =>
        rel === "package.json" || (rel.startsWith("dist/") && rel.endsWith(".js")) || rel.startsWith(binDir),
    );
  } else {
    add(await webRuntimeRoot(opts), backend, (rel) => WEB_RUNTIME_FILES.includes(rel));
  }
  add(
    common,
    "onnxruntime-common",
    (rel) => rel === "package.json" || (rel.startsWith("dist/cjs/") && /\.(js|json)$/.test(rel)),
  );
  return files;
}

/**
 * What serves the agent on a tty: the link layer's modules beside agent.mjs, serialport's native binding in node_modules —
 * with the onnxruntime-node backend only: the onnxruntime-web fallback is for boards where native binaries do not
 * load (old glibc), and gets no native code.
 */
export async function serialFiles(arch: string, backend: Backend): Promise<RuntimeFile[]> {
  const link = await linkProgram();
  let binding: RuntimeFile[] = [];
  try {
    if (backend === "onnxruntime-node") binding = serialRuntimeFiles(arch);
  } catch {
    binding = []; // no prebuilt serialport binding for this arch: the board serves ssh/local only
  }
  return [...link.files.map((f) => ({ path: f.path, bytes: Buffer.from(f.code) })), ...binding];
}
