/**
 * Installing the agent and its runtime on a board, from the host (boards without internet work): the agent file
 * goes over a plain command (Node writes its stdin to a file), then the agent receives the runtime files through
 * its own protocol (chunked, fsynced, sha256-checked). `installed.json` is written last: an interrupted setup is
 * simply re-run (files already on the board with the right sha256 are skipped). Same version → nothing to do.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, posix, relative } from "node:path";
import { AGENT_VERSION, type BoardFacts } from "./agent/agent.js";
import { agentProgram } from "./agent/source.js";
import { type Backend, type Detection, detectBoard, factsOverShell } from "./boards.js";
import { AgentClient, type Hello, type InstalledInfo } from "./client.js";
import { AgentNotInstalledError, DeviceError, NodeError } from "./errors.js";
import { type FetchOptions, fetchPackageFiles } from "./fetch.js";
import { linkProgram, serialRuntimeFiles } from "./serial/source.js";
import type { Transport } from "./transport/channel.js";

const requireHere = createRequire(import.meta.url);

/** Upload chunk over serial lines: a cut loses at most this much, and the board keeps the rest for a resume. */
export const SERIAL_CHUNK = 4096;

/** Lowest Node.js major the agent runs on. */
export const MIN_NODE_MAJOR = 18;

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

/**
 * The install key: agent version + hash of the agent and serial link code + runtime version. A new qat or runtime
 * means a new key.
 */
export async function installKey(): Promise<string> {
  const prog = await agentProgram();
  const link = await linkProgram();
  const code = createHash("sha256").update(prog.sha256).update(link.sha256).digest("hex");
  return `${AGENT_VERSION}-${code.slice(0, 12)}-ort${hostRuntimeVersion()}`;
}

/**
 * What serves the agent on a tty: the link layer beside agent.mjs, serialport's native binding in node_modules —
 * with the onnxruntime-node backend only: the onnxruntime-web fallback is for boards where native binaries do not
 * load (old glibc), and gets no native code.
 */
async function serialFiles(arch: string, backend: Backend): Promise<RuntimeFile[]> {
  const link = await linkProgram();
  let binding: RuntimeFile[] = [];
  try {
    if (backend === "onnxruntime-node") binding = serialRuntimeFiles(arch);
  } catch {
    binding = []; // no prebuilt serialport binding for this arch: the board serves ssh/local only
  }
  return [{ path: "serial-link.mjs", bytes: Buffer.from(link.code) }, ...binding];
}

/** Paths on the board (POSIX, relative to the login folder when the home is). */
export function agentPath(t: Transport, key: string): string {
  return posix.join(t.home, "install", key, "agent.mjs");
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

/** Short JS programs run with `node -e` on the board. Paths arrive as arguments, never inside the code. */
const PROBE_JS = `
const fs = require("fs"), path = require("path");
let installed = null;
try { installed = JSON.parse(fs.readFileSync(path.join(process.argv[1], "installed.json"), "utf8")); } catch {}
const r = process.report && process.report.getReport();
process.stdout.write(JSON.stringify({ node: process.version, arch: process.arch, platform: process.platform,
  glibc: (r && r.header && r.header.glibcVersionRuntime) || null, installed }));
`;

const WRITE_JS = `
const fs = require("fs"), path = require("path");
const dest = process.argv[1];
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = dest + "." + process.pid + ".tmp";
  const fd = fs.openSync(tmp, "w", 0o644);
  fs.writeSync(fd, Buffer.concat(chunks));
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, dest);
  process.stdout.write("ok");
});
`;

export interface Probe {
  node: string;
  arch: string;
  platform: string;
  glibc: string | null;
  installed: InstalledInfo | null;
}

/** Ask the board's Node for its version, arch, glibc and the installed agent. Raises NodeError when it cannot. */
export async function probeNode(t: Transport): Promise<Probe> {
  const r = await t.exec([...t.node, "-e", PROBE_JS, t.home], { timeoutMs: 120_000 });
  const err = r.stderr.toString("utf8").trim();
  if (r.code === 127 || (r.code !== 0 && /not found|No such file/.test(err))) {
    let what = "";
    if (t.kind === "ssh") {
      try {
        const f = detectBoard(await factsOverShell(t));
        what = ` (the board looks like a ${f.profile.name}${f.glibc ? `, glibc ${f.glibc}` : ""})`;
      } catch {
        what = "";
      }
    }
    throw new NodeError("node-missing", `Node.js is not found on the board as '${t.node.join(" ")}'${what}`, {
      device: t.label,
      hint: `install Node.js ≥ ${MIN_NODE_MAJOR} there (e.g. from nodejs.org or NodeSource), or give its path with the device's node setting`,
    });
  }
  if (r.code !== 0) {
    throw new NodeError(
      "node-failed",
      `'${t.node.join(" ")} -e …' failed with code ${r.code}: ${err.split("\n").slice(-3).join(" | ")}`,
      {
        device: t.label,
        hint: "check that Node.js runs on the board",
      },
    );
  }
  let p: Probe;
  try {
    p = JSON.parse(r.stdout.toString("utf8").slice(r.stdout.indexOf("{"))) as Probe;
  } catch {
    throw new NodeError(
      "node-failed",
      `the board's Node.js printed something unexpected: ${r.stdout.toString("utf8").slice(0, 200)}`,
      {
        device: t.label,
      },
    );
  }
  const major = Number(/^v(\d+)/.exec(p.node)?.[1] ?? 0);
  if (major < MIN_NODE_MAJOR) {
    throw new NodeError("node-too-old", `Node.js ${p.node} on the board is older than ${MIN_NODE_MAJOR}`, {
      device: t.label,
      hint: `install Node.js ≥ ${MIN_NODE_MAJOR} (the agent uses APIs of Node 18)`,
    });
  }
  if (p.platform !== "linux") {
    throw new NodeError("unsupported-os", `the board runs ${p.platform}; qat boards run Linux`, {
      device: t.label,
    });
  }
  return p;
}

export interface AgentSession {
  client: AgentClient;
  hello: Hello;
  key: string;
}

/** Start the installed agent and greet it. Raises AgentNotInstalledError when setup is needed. */
export async function connectAgent(t: Transport): Promise<AgentSession> {
  const key = await installKey();
  const ch = await t.spawn([...t.node, agentPath(t, key), "--home", t.home]);
  const client = new AgentClient(ch, t.label);
  if (t.kind === "serial") {
    client.resumeUploads = true;
    client.chunkSize = SERIAL_CHUNK;
  }
  let hello: Hello;
  try {
    hello = await client.hello();
  } catch (e) {
    ch.kill();
    throw e;
  }
  if (hello.installed?.key !== key) {
    await client.close();
    throw new AgentNotInstalledError(
      "agent-outdated",
      `the board's agent install is ${hello.installed?.key ?? "not committed"}, this qat needs ${key}`,
      { device: t.label, hint: "run `qat device setup` for this device" },
    );
  }
  return { client, hello, key };
}

export interface SetupOptions extends FetchOptions {
  /** Reinstall even when the same version is installed. */
  force?: boolean;
  /** Install this runtime instead of the one detection picks (onnxruntime-web: the WebAssembly fallback). */
  backend?: Backend;
  /** Remove older agent installs (default true). */
  prune?: boolean;
  onProgress?: (message: string) => void;
}

export interface SetupResult {
  device: string;
  /** False when the same version was already installed (nothing was done). */
  changed: boolean;
  key: string;
  installed: InstalledInfo;
  node: string;
  facts: BoardFacts;
  detection: Detection;
  /** Runtime files sent, and skipped because the board had them. */
  filesSent: number;
  filesSkipped: number;
  bytesSent: number;
  runtime: Record<string, string>;
}

/** Install (or confirm) the agent and its runtime on a board. Idempotent. */
export async function setupDevice(t: Transport, opts: SetupOptions = {}): Promise<SetupResult> {
  if (t.kind === "serial") return setupOverAgent(t, opts);
  const say = opts.onProgress ?? (() => {});
  const key = await installKey();
  say(`checking Node.js on ${t.label}`);
  const probe = await probeNode(t);
  const sameBackend = !opts.backend || probe.installed?.backend === opts.backend;
  if (probe.installed?.key === key && sameBackend && !opts.force) {
    const s = await connectAgent(t);
    try {
      const facts = s.hello.facts;
      return {
        device: t.label,
        changed: false,
        key,
        installed: s.hello.installed!,
        node: probe.node,
        facts,
        detection: detectBoard(facts),
        filesSent: 0,
        filesSkipped: 0,
        bytesSent: 0,
        runtime: {},
      };
    } finally {
      await s.client.close();
    }
  }
  const prog = await agentProgram();
  const path = agentPath(t, key);
  say(`installing the agent at ${path}`);
  const w = await t.exec([...t.node, "-e", WRITE_JS, path], {
    input: Buffer.from(prog.code),
    timeoutMs: 120_000,
  });
  if (w.code !== 0 || w.stdout.toString() !== "ok") {
    throw new DeviceError(
      "install-failed",
      `cannot write ${path}: ${w.stderr.toString("utf8").trim().split("\n").slice(-2).join(" | ")}`,
      {
        device: t.label,
        hint: "check free space and permissions of the agent home on the board",
      },
    );
  }
  const ch = await t.spawn([...t.node, path, "--home", t.home]);
  const client = new AgentClient(ch, t.label);
  try {
    const hello = await client.hello();
    const detection = detectBoard(hello.facts);
    const backend = opts.backend ?? detection.backend;
    const arch = hello.facts.arch;
    const files = [...(await runtimeFiles(arch, backend, opts)), ...(await serialFiles(arch, backend))];
    let sent = 0;
    let skipped = 0;
    let bytes = 0;
    say(`pushing ${files.length} ${backend} files for linux/${arch}`);
    for (const f of files) {
      const r = await client.put(f.bytes, { kind: "file", path: f.path });
      if (r.existed) skipped++;
      else {
        sent++;
        bytes += f.bytes.length;
      }
    }
    say("loading the runtime on the board");
    let runtime: Record<string, string>;
    try {
      runtime = (await client.runtimeCheck(backend)).versions;
    } catch (e) {
      throw new DeviceError(
        "runtime-broken",
        `the runtime does not load on the board: ${(e as Error).message}`,
        {
          device: t.label,
          hint:
            backend === "onnxruntime-node"
              ? "onnxruntime-node's linux/arm64 build needs glibc ≥ 2.28 and a 64-bit OS"
              : "check the onnxruntime-web files on the host",
          cause: e,
        },
      );
    }
    const info: InstalledInfo = {
      key,
      agentVersion: AGENT_VERSION,
      agentSha256: prog.sha256,
      backend,
      runtimeVersion: hostRuntimeVersion(),
      arch,
    };
    const installed = await client.commitInstall(info);
    if (opts.prune !== false) await client.pruneInstalls();
    return {
      device: t.label,
      changed: true,
      key,
      installed,
      node: probe.node,
      facts: hello.facts,
      detection,
      filesSent: sent,
      filesSkipped: skipped,
      bytesSent: bytes,
      runtime,
    };
  } finally {
    await client.close();
  }
}

/**
 * Setup over a serial line: no shell on the other end, only the agent already listening on the board's tty. It
 * must be this qat's agent (its install folder is named by the install key); then the runtime files go through
 * the agent's own uploads (resumable, sha256-checked) and the install is committed, as over SSH.
 */
async function setupOverAgent(t: Transport, opts: SetupOptions): Promise<SetupResult> {
  const say = opts.onProgress ?? (() => {});
  const key = await installKey();
  const ch = await t.spawn(["node", agentPath(t, key), "--home", t.home]);
  const client = new AgentClient(ch, t.label);
  client.resumeUploads = true;
  client.chunkSize = SERIAL_CHUNK;
  try {
    const hello = await client.hello();
    const running = posix.basename(hello.installDir.split("\\").join("/"));
    if (running !== key) {
      throw new AgentNotInstalledError(
        "agent-outdated",
        `the agent on the tty runs from install ${running}, this qat needs ${key}; a serial line cannot replace a running agent`,
        {
          device: t.label,
          hint: "install this qat's agent once over ssh or on the board (`qat device setup`), then restart qat-agent.service",
        },
      );
    }
    const detection = detectBoard(hello.facts);
    const backend = opts.backend ?? detection.backend;
    if (hello.installed?.key === key && hello.installed.backend === backend && !opts.force) {
      return {
        device: t.label,
        changed: false,
        key,
        installed: hello.installed,
        node: hello.facts.node,
        facts: hello.facts,
        detection,
        filesSent: 0,
        filesSkipped: 0,
        bytesSent: 0,
        runtime: {},
      };
    }
    const files = [
      ...(await runtimeFiles(hello.facts.arch, backend, opts)),
      ...(await serialFiles(hello.facts.arch, backend)),
    ];
    say(`pushing ${files.length} ${backend} files for linux/${hello.facts.arch} over ${t.label}`);
    let sent = 0;
    let skipped = 0;
    let bytes = 0;
    for (const f of files) {
      const r = await client.put(f.bytes, { kind: "file", path: f.path });
      if (r.existed) skipped++;
      else {
        sent++;
        bytes += f.bytes.length - r.resumedFrom;
      }
    }
    const runtime = (await client.runtimeCheck(backend)).versions;
    const prog = await agentProgram();
    const installed = await client.commitInstall({
      key,
      agentVersion: AGENT_VERSION,
      agentSha256: prog.sha256,
      backend,
      runtimeVersion: hostRuntimeVersion(),
      arch: hello.facts.arch,
    });
    return {
      device: t.label,
      changed: true,
      key,
      installed,
      node: hello.facts.node,
      facts: hello.facts,
      detection,
      filesSent: sent,
      filesSkipped: skipped,
      bytesSent: bytes,
      runtime,
    };
  } finally {
    await client.close();
  }
}
