/**
 * Installing the agent and its runtime on a board, from the host (boards without internet work): the agent's
 * modules go over a plain command (Node writes its stdin to files), then the agent receives the runtime files
 * through its own protocol (chunked, fsynced, sha256-checked). `installed.json` is written last: an interrupted
 * setup is simply re-run (files already on the board with the right sha256 are skipped). Same version → nothing
 * to do.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { newSecret, SECRET_FILE } from "./agent/auth.js";
import { CONFIG_FILE } from "./agent/config.js";
import { AGENT_VERSION, type BoardFacts } from "./agent/protocol.js";
import { AGENT_ENTRY, type AgentProgram, agentProgram } from "./agent/source.js";
import { type Backend, type Detection, detectBoard } from "./boards.js";
import { AgentClient, type Hello, type InstalledInfo } from "./client.js";
import { AgentNotInstalledError, DeviceError } from "./errors.js";
import type { FetchOptions } from "./fetch.js";
import { probeNode } from "./probe.js";
import { hostRuntimeVersion, type RuntimeFile, runtimeFiles, serialFiles } from "./runtime-files.js";
import { linkProgram } from "./serial/source.js";
import { authenticate } from "./session-auth.js";
import type { Transport } from "./transport/channel.js";

export { MIN_NODE_MAJOR, type Probe, probeNode } from "./probe.js";
export {
  hostRuntimeVersion,
  type RuntimeFile,
  runtimeFiles,
  WEB_RUNTIME_FILES,
  webRuntimeRoot,
} from "./runtime-files.js";

/** Upload chunk over serial lines: a cut loses at most this much, and the board keeps the rest for a resume. */
export const SERIAL_CHUNK = 4096;

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

/** Paths on the board (POSIX, relative to the login folder when the home is). */
export function agentPath(t: Transport, key: string): string {
  return posix.join(t.home, "install", key, AGENT_ENTRY);
}

/**
 * A short JS program run with `node -e` on the board: writes the files of stdin (JSON: [{ path, data (base64),
 * private }], plain names only) into the folder given as its argument (made mode 0700), each fsynced and renamed
 * into place; private files (the device secret, the agent's configuration) are mode 0600 from their creation, the
 * others 0644. Paths arrive as data, never inside the code. It runs over the channel the owner controls (ssh, or
 * this machine), never through the agent protocol.
 */
const WRITE_JS = `
const fs = require("fs"), path = require("path");
const dir = process.argv[1];
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const files = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const f of files) {
    if (!/^[A-Za-z0-9._-]+$/.test(f.path) || f.path.startsWith(".")) throw new Error("bad file name " + f.path);
    const dest = path.join(dir, f.path);
    const tmp = dest + "." + process.pid + ".tmp";
    const mode = f.private ? 0o600 : 0o644;
    const fd = fs.openSync(tmp, "w", mode);
    fs.fchmodSync(fd, mode);
    fs.writeSync(fd, Buffer.from(f.data, "base64"));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, dest);
  }
  process.stdout.write("ok");
});
`;

/** Write files into a folder on the board with its own Node (no agent needed); `what` names them in errors. */
async function writeFiles(
  t: Transport,
  dir: string,
  files: { path: string; data: Uint8Array; private?: boolean }[],
  what: string,
): Promise<void> {
  const input = files.map((f) => ({ ...f, data: Buffer.from(f.data).toString("base64") }));
  const w = await t.exec([...t.node, "-e", WRITE_JS, dir], {
    input: Buffer.from(JSON.stringify(input)),
    timeoutMs: 120_000,
  });
  if (w.code !== 0 || w.stdout.toString() !== "ok") {
    throw new DeviceError(
      "install-failed",
      `cannot write ${what} into ${dir}: ${w.stderr.toString("utf8").trim().split("\n").slice(-2).join(" | ")}`,
      {
        device: t.label,
        hint: "check free space and permissions of the agent home on the board",
      },
    );
  }
}

/**
 * Give the board its device secret (auth.key) and, when given, trtexec's location (agent.json), both 0600 in the
 * agent's home, over the transport's own command channel.
 */
async function writeBoardAuth(t: Transport, secret: Uint8Array, trtexec: string | undefined): Promise<void> {
  if (trtexec !== undefined && !posix.isAbsolute(trtexec)) {
    throw new DeviceError("bad-option", `--trtexec '${trtexec}' is not an absolute path on the board`, {
      device: t.label,
      hint: "give the full path, e.g. --trtexec /usr/src/tensorrt/bin/trtexec",
      exitCode: 2,
    });
  }
  const files = [{ path: SECRET_FILE, data: secret, private: true }];
  if (trtexec !== undefined) {
    const config = `${JSON.stringify({ trtexec }, null, 2)}\n`;
    files.push({ path: CONFIG_FILE, data: Buffer.from(config), private: true });
  }
  await writeFiles(t, t.home, files, "the device secret");
}

/** Write the agent's modules into its install folder with the board's own Node (no agent runs there yet). */
async function writeAgent(t: Transport, path: string, prog: AgentProgram): Promise<void> {
  const files = prog.files.map((f) => ({ path: f.path, data: Buffer.from(f.code) }));
  await writeFiles(t, posix.dirname(path), files, "the agent");
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
    await authenticate(client, t.secret);
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
  /** A new device secret even when the transport has one (re-key; not over serial: it has no shell). */
  rekey?: boolean;
  /** trtexec's absolute path on the board, kept in the agent's configuration (absent: left as configured). */
  trtexec?: string;
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

/** A setup that found the same install in place: nothing sent. */
function unchanged(
  t: Transport,
  key: string,
  installed: InstalledInfo,
  node: string,
  facts: BoardFacts,
  detection: Detection,
): SetupResult {
  const none = { filesSent: 0, filesSkipped: 0, bytesSent: 0, runtime: {} };
  return { device: t.label, changed: false, key, installed, node, facts, detection, ...none };
}

/** Push the runtime files through the agent's uploads; counts what was sent and what the board already had. */
async function pushFiles(
  client: AgentClient,
  files: RuntimeFile[],
): Promise<{ filesSent: number; filesSkipped: number; bytesSent: number }> {
  let filesSent = 0;
  let filesSkipped = 0;
  let bytesSent = 0;
  for (const f of files) {
    const r = await client.put(f.bytes, { kind: "file", path: f.path });
    if (r.existed) filesSkipped++;
    else {
      filesSent++;
      bytesSent += f.bytes.length - r.resumedFrom;
    }
  }
  return { filesSent, filesSkipped, bytesSent };
}

/** Load the runtime on the board; a failure names what to do for the backend. */
async function checkRuntime(
  client: AgentClient,
  t: Transport,
  backend: Backend,
): Promise<Record<string, string>> {
  try {
    return (await client.runtimeCheck(backend)).versions;
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
}

/**
 * Through a running agent of this install: push the runtime files, load the runtime, commit the install (and
 * remove older installs when asked).
 */
async function installThrough(
  client: AgentClient,
  t: Transport,
  hello: Hello,
  key: string,
  backend: Backend,
  opts: SetupOptions,
): Promise<Omit<SetupResult, "device" | "changed" | "key" | "node" | "detection">> {
  const say = opts.onProgress ?? (() => {});
  const arch = hello.facts.arch;
  const files = [...(await runtimeFiles(arch, backend, opts)), ...(await serialFiles(arch, backend))];
  say(
    `pushing ${files.length} ${backend} files for linux/${arch}${t.kind === "serial" ? ` over ${t.label}` : ""}`,
  );
  const pushed = await pushFiles(client, files);
  say("loading the runtime on the board");
  const runtime = await checkRuntime(client, t, backend);
  const prog = await agentProgram();
  const installed = await client.commitInstall({
    key,
    agentVersion: AGENT_VERSION,
    agentSha256: prog.sha256,
    backend,
    runtimeVersion: hostRuntimeVersion(),
    arch,
  });
  if (opts.prune !== false && t.kind !== "serial") await client.pruneInstalls();
  return { installed, facts: hello.facts, runtime, ...pushed };
}

/** Install (or confirm) the agent and its runtime on a board. Idempotent. */
export async function setupDevice(t: Transport, opts: SetupOptions = {}): Promise<SetupResult> {
  if (t.kind === "serial") return setupOverAgent(t, opts);
  const say = opts.onProgress ?? (() => {});
  const key = await installKey();
  say(`checking Node.js on ${t.label}`);
  const probe = await probeNode(t);
  // the secret the transport brings (the registry's), else a new one; the board gets it over ssh / locally
  const secret = opts.rekey || !t.secret ? newSecret() : t.secret;
  await writeBoardAuth(t, secret, opts.trtexec);
  t.secret = secret;
  const sameBackend = !opts.backend || probe.installed?.backend === opts.backend;
  if (probe.installed?.key === key && sameBackend && !opts.force) {
    const s = await connectAgent(t);
    try {
      const facts = s.hello.facts;
      return unchanged(t, key, s.hello.installed!, probe.node, facts, detectBoard(facts));
    } finally {
      await s.client.close();
    }
  }
  const path = agentPath(t, key);
  say(`installing the agent at ${path}`);
  await writeAgent(t, path, await agentProgram());
  const ch = await t.spawn([...t.node, path, "--home", t.home]);
  const client = new AgentClient(ch, t.label);
  try {
    await authenticate(client, t.secret);
    const hello = await client.hello();
    const detection = detectBoard(hello.facts);
    const backend = opts.backend ?? detection.backend;
    const done = await installThrough(client, t, hello, key, backend, opts);
    return { device: t.label, changed: true, key, node: probe.node, detection, ...done };
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
  if (opts.rekey || opts.trtexec !== undefined) {
    throw new DeviceError(
      "serial-no-shell",
      `${opts.rekey ? "a new device secret" : "trtexec's location"} cannot be set over a serial line: the board's agent takes neither from the wire`,
      {
        device: t.label,
        hint: "run the setup over ssh or on the board, then `qat device add NAME serial://… --secret-of <that device>`",
        exitCode: 2,
      },
    );
  }
  const key = await installKey();
  const ch = await t.spawn(["node", agentPath(t, key), "--home", t.home]);
  const client = new AgentClient(ch, t.label);
  client.resumeUploads = true;
  client.chunkSize = SERIAL_CHUNK;
  try {
    await authenticate(client, t.secret);
    const hello = await client.hello();
    const running = hello.installKey;
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
    const node = hello.facts.node;
    if (hello.installed?.key === key && hello.installed.backend === backend && !opts.force) {
      return unchanged(t, key, hello.installed, node, hello.facts, detection);
    }
    const done = await installThrough(client, t, hello, key, backend, opts);
    return { device: t.label, changed: true, key, node, detection, ...done };
  } finally {
    await client.close();
  }
}
