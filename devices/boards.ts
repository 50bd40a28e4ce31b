/**
 * Board profiles, and detection from what a board says about itself (/proc/device-tree/model,
 * /etc/nv_tegra_release, /proc/cpuinfo, `uname -m`, the glibc version, memory) — collected by the agent
 * (`collectFacts`) or, before it is installed, by a shell command over the transport (`factsOverShell`).
 */
import type { BoardFacts } from "./agent/protocol.js";
import type { Transport } from "./transport/channel.js";

export type BoardId =
  | "raspberry-pi-4"
  | "raspberry-pi-5"
  | "jetson-orin"
  | "jetson-nano"
  | "generic-arm64"
  | "generic-x64";

/** How the board runs ONNX models. */
export type Backend = "onnxruntime-node" | "onnxruntime-web";

export interface BoardProfile {
  id: BoardId;
  name: string;
  arch: "arm64" | "x64";
  cpu: string;
  /** Armv8.2 dot-product instructions (SDOT/UDOT): int8 kernels run markedly faster with them. */
  dotProduct: boolean;
  backend: Backend;
  /** Lowest glibc the backend needs (onnxruntime-node's arm64 build needs 2.28). */
  minGlibc?: string;
  notes: string[];
}

export const BOARDS: Record<BoardId, BoardProfile> = {
  "raspberry-pi-4": {
    id: "raspberry-pi-4",
    name: "Raspberry Pi 4",
    arch: "arm64",
    cpu: "4× Cortex-A72 (Armv8.0-A)",
    dotProduct: false,
    backend: "onnxruntime-node",
    minGlibc: "2.28",
    notes: [
      "no dot-product instructions: int8 kernels use the plain NEON path",
      "needs a 64-bit OS (no 32-bit ARM build of onnxruntime-node)",
    ],
  },
  "raspberry-pi-5": {
    id: "raspberry-pi-5",
    name: "Raspberry Pi 5",
    arch: "arm64",
    cpu: "4× Cortex-A76 (Armv8.2-A)",
    dotProduct: true,
    backend: "onnxruntime-node",
    minGlibc: "2.28",
    notes: ["dot-product instructions: int8 kernels use SDOT/UDOT", "needs a 64-bit OS"],
  },
  "jetson-orin": {
    id: "jetson-orin",
    name: "NVIDIA Jetson Orin (JetPack 5/6)",
    arch: "arm64",
    cpu: "Cortex-A78AE (Armv8.2-A)",
    dotProduct: true,
    backend: "onnxruntime-node",
    minGlibc: "2.28",
    notes: [
      "runs on the CPU through onnxruntime-node's arm64 build; the GPU (TensorRT) is not used by the agent",
    ],
  },
  "jetson-nano": {
    id: "jetson-nano",
    name: "NVIDIA Jetson Nano (JetPack 4)",
    arch: "arm64",
    cpu: "4× Cortex-A57 (Armv8.0-A)",
    dotProduct: false,
    backend: "onnxruntime-web",
    notes: [
      "JetPack 4 is Ubuntu 18.04 with glibc 2.27, too old for onnxruntime-node's arm64 build (needs 2.28): the " +
        "agent falls back to onnxruntime-web (WebAssembly, single-threaded, several times slower than native)",
      "Node.js ≥ 18 itself needs glibc 2.28: use an unofficial glibc-2.17 build of Node (unofficial-builds.nodejs.org)",
    ],
  },
  "generic-arm64": {
    id: "generic-arm64",
    name: "generic arm64 Linux",
    arch: "arm64",
    cpu: "unknown arm64",
    dotProduct: false,
    backend: "onnxruntime-node",
    minGlibc: "2.28",
    notes: [],
  },
  "generic-x64": {
    id: "generic-x64",
    name: "generic x86-64 Linux",
    arch: "x64",
    cpu: "x86-64",
    dotProduct: false,
    backend: "onnxruntime-node",
    notes: [
      "x86 without VNNI saturates u8·s8 int8 kernels (16-bit sums); results can differ from ARM boards",
    ],
  },
};

export interface Detection {
  profile: BoardProfile;
  /** Why this profile: the facts that decided it. */
  evidence: string[];
  /** The backend to install, after checking glibc. */
  backend: Backend;
  /** Features read from /proc/cpuinfo (arm64: asimd, asimddp, ...). */
  cpuFeatures: string[];
  /** CPU part numbers from /proc/cpuinfo (0xd08 = Cortex-A72). */
  cpuParts: string[];
  glibc: string | null;
  memTotal: number | null;
  warnings: string[];
}

/** Compare dotted versions: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

const ARM_PARTS: Record<string, string> = {
  "0xd03": "Cortex-A53",
  "0xd04": "Cortex-A35",
  "0xd05": "Cortex-A55",
  "0xd07": "Cortex-A57",
  "0xd08": "Cortex-A72",
  "0xd09": "Cortex-A73",
  "0xd0a": "Cortex-A75",
  "0xd0b": "Cortex-A76",
  "0xd0c": "Neoverse-N1",
  "0xd0d": "Cortex-A77",
  "0xd41": "Cortex-A78",
  "0xd42": "Cortex-A78AE",
};

/** What /proc/cpuinfo says: features (arm64 Features / x86 flags), CPU parts, the model lines, the Pi revision. */
interface CpuinfoFacts {
  features: Set<string>;
  parts: Set<string>;
  /** arm64 Raspberry Pi kernels' "Model" line ("Raspberry Pi 5 Model B Rev 1.0"). */
  model: string;
  /** x86's "model name". */
  modelName: string;
  /** Raspberry Pi "Revision" code (hex), e.g. d04170. */
  revision: string;
}

function parseCpuinfo(cpuinfo: string): CpuinfoFacts {
  const c: CpuinfoFacts = { features: new Set(), parts: new Set(), model: "", modelName: "", revision: "" };
  for (const line of cpuinfo.split("\n")) {
    const m = /^([^:]+?)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.trim().toLowerCase();
    const value = m[2]!.trim();
    if (key === "features" || key === "flags") for (const x of value.split(/\s+/)) if (x) c.features.add(x);
    if (key === "cpu part") c.parts.add(value.toLowerCase());
    if (key === "model" && /[A-Za-z]/.test(value)) c.model = value; // x86's "model" is a number
    if (key === "model name" && !c.modelName) c.modelName = value;
    if (key === "revision" && /^[0-9a-f]{4,8}$/i.test(value)) c.revision = value.toLowerCase();
  }
  return c;
}

/**
 * The board type in a new-style Raspberry Pi revision code (bit 23 set; type in bits 4–11), as the Raspberry Pi
 * documentation's "Raspberry Pi revision codes" table lists it: 0x11 4B, 0x13 400, 0x14 CM4, 0x17 5, 0x18 CM5, 0x19 500.
 */
const PI_TYPES: Record<number, [BoardId, string]> = {
  0x11: ["raspberry-pi-4", "Raspberry Pi 4B"],
  0x13: ["raspberry-pi-4", "Raspberry Pi 400"],
  0x14: ["raspberry-pi-4", "Raspberry Pi CM4"],
  0x17: ["raspberry-pi-5", "Raspberry Pi 5"],
  0x18: ["raspberry-pi-5", "Raspberry Pi CM5"],
  0x19: ["raspberry-pi-5", "Raspberry Pi 500"],
};

function piFromRevision(revision: string): [BoardId, string] | undefined {
  const code = Number.parseInt(revision, 16);
  if (!revision || !(code & (1 << 23))) return undefined;
  return PI_TYPES[(code >> 4) & 0xff];
}

/** The CPU part each board is built with: a mismatch is worth a warning (a different board, or an odd cpuinfo). */
const BOARD_PARTS: Partial<Record<BoardId, string>> = {
  "raspberry-pi-4": "0xd08",
  "raspberry-pi-5": "0xd0b",
  "jetson-orin": "0xd42",
  "jetson-nano": "0xd07",
};

/** The board from the model names, the Pi revision code, L4T's release file and the CPU part; with why. */
function identify(
  f: Partial<BoardFacts>,
  c: CpuinfoFacts,
): { id: BoardId; evidence: string[]; warnings: string[] } {
  const evidence: string[] = [];
  const warnings: string[] = [];
  const dtModel = (f.deviceTreeModel ?? "").trim() || c.model;
  const tegra = f.nvTegraRelease ?? "";
  const machine = (f.machine ?? f.arch ?? "").toLowerCase();
  const arm64 = machine === "aarch64" || machine === "arm64" || f.arch === "arm64";
  const x64 = machine === "x86_64" || machine === "amd64" || f.arch === "x64";
  const pi = piFromRevision(c.revision);
  if (/Raspberry Pi (5|500|Compute Module 5)/i.test(dtModel)) {
    evidence.push(`model: ${dtModel}`);
    return { id: "raspberry-pi-5", evidence, warnings };
  }
  if (/Raspberry Pi 4|Raspberry Pi Compute Module 4|Raspberry Pi 400/i.test(dtModel)) {
    evidence.push(`model: ${dtModel}`);
    return { id: "raspberry-pi-4", evidence, warnings };
  }
  if (pi) {
    evidence.push(`cpuinfo revision ${c.revision}: ${pi[1]}`);
    return { id: pi[0], evidence, warnings };
  }
  if (tegra || /jetson|nvidia/i.test(dtModel)) {
    const rel = /R(\d+)\s*\(release\)(?:,\s*REVISION:\s*([\d.]+))?/.exec(tegra);
    const l4t = rel ? Number(rel[1]) : undefined;
    if (tegra)
      evidence.push(
        `/etc/nv_tegra_release: L4T ${rel ? `R${rel[1]}${rel[2] ? `.${rel[2]}` : ""}` : tegra.split("\n")[0]!.slice(0, 60)}`,
      );
    if (dtModel) evidence.push(`model: ${dtModel}`);
    // L4T R32 = JetPack 4 (Nano, TX1/TX2, Xavier); R35 = JetPack 5, R36 = JetPack 6 (Orin; R35 also runs on Xavier)
    const orin = /orin/i.test(dtModel) || c.parts.has("0xd42") || (l4t !== undefined && l4t >= 34);
    return { id: orin ? "jetson-orin" : "jetson-nano", evidence, warnings };
  }
  if (arm64 || x64) {
    evidence.push(`machine: ${machine || f.arch}`);
    return { id: arm64 ? "generic-arm64" : "generic-x64", evidence, warnings };
  }
  const id: BoardId = "generic-x64";
  warnings.push(`unknown machine '${machine}': treated as ${id}`);
  return { id, evidence, warnings };
}

/** Pick the board profile from the facts a board reported. */
export function detectBoard(f: Partial<BoardFacts>): Detection {
  const c = parseCpuinfo(f.cpuinfo ?? "");
  const { id, evidence, warnings } = identify(f, c);
  const { features, parts } = c;
  const profile = BOARDS[id];
  let backend = profile.backend;
  const glibc = f.glibc ?? null;
  if (profile.arch === "arm64" && glibc && compareVersions(glibc, "2.28") < 0) {
    backend = "onnxruntime-web";
    warnings.push(
      `glibc ${glibc} is older than 2.28, which onnxruntime-node's arm64 build needs: using onnxruntime-web (WebAssembly)`,
    );
  }
  const part = BOARD_PARTS[id];
  if (part && parts.size && !parts.has(part)) {
    warnings.push(
      `the CPU (part ${[...parts].join(", ")}) is not the ${ARM_PARTS[part]} (${part}) of a ${profile.name}`,
    );
  }
  if (
    profile.arch === "arm64" &&
    features.size &&
    features.has("asimddp") !== profile.dotProduct &&
    id !== "generic-arm64"
  ) {
    warnings.push(
      `the CPU ${features.has("asimddp") ? "has" : "lacks"} dot-product instructions (asimddp), unlike a typical ${profile.name}`,
    );
  }
  if (profile.arch === "arm64" && features.has("asimddp"))
    evidence.push("asimddp in cpuinfo: dot-product instructions (SDOT/UDOT) for int8 kernels");
  if (id === "generic-x64" && features.size) {
    if (c.modelName) evidence.push(`cpu: ${c.modelName}`);
    const vnni = features.has("avx512_vnni") || features.has("avx_vnni");
    evidence.push(vnni ? "VNNI in cpuinfo (avx512_vnni/avx_vnni)" : "no VNNI in cpuinfo");
    if (!vnni) {
      warnings.push(
        "no VNNI: onnxruntime's u8·s8 int8 kernels sum pairs of products in 16 bits and saturate when int8 weights " +
          "go beyond ±64 (default session options); such a model drifts here and not on ARM boards",
      );
    }
  }
  const cpuNames = [...parts].map((p) => `${ARM_PARTS[p] ?? "unknown"} (part ${p})`);
  if (cpuNames.length) evidence.push(`cpu: ${cpuNames.join(", ")}`);
  return {
    profile: id === "generic-arm64" && features.has("asimddp") ? { ...profile, dotProduct: true } : profile,
    evidence,
    backend,
    cpuFeatures: [...features],
    cpuParts: [...parts],
    glibc,
    memTotal: f.memTotal ?? null,
    warnings,
  };
}

const FACTS_SCRIPT = [
  "echo '@@machine'; uname -m",
  "echo '@@kernel'; uname -r",
  "echo '@@hostname'; uname -n",
  "echo '@@model'; cat /proc/device-tree/model 2>/dev/null | tr -d '\\000'",
  "echo '@@tegra'; cat /etc/nv_tegra_release 2>/dev/null",
  "echo '@@cpuinfo'; cat /proc/cpuinfo 2>/dev/null",
  "echo '@@glibc'; (getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>/dev/null | head -n 1)",
  "echo '@@mem'; grep MemTotal /proc/meminfo 2>/dev/null",
  "echo '@@node'; node --version 2>/dev/null",
  "echo '@@end'",
].join("; ");

/**
 * Facts gathered with a fixed shell script (no user values in it) — for boards where Node or the agent cannot
 * run yet. Over the emulated transport this describes the host, not the emulated CPU: use the agent there.
 */
export async function factsOverShell(
  t: Transport,
): Promise<Partial<BoardFacts> & { nodeOnPath: string | null }> {
  const r = await t.exec(["sh", "-c", FACTS_SCRIPT], { timeoutMs: 30_000 });
  const text = r.stdout.toString("utf8");
  const sections = new Map<string, string>();
  let key = "";
  for (const line of text.split("\n")) {
    const m = /^@@(\w+)$/.exec(line);
    if (m) key = m[1]!;
    else if (key) sections.set(key, (sections.get(key) ?? "") + line + "\n");
  }
  const get = (k: string): string => (sections.get(k) ?? "").trim();
  const glibcText = get("glibc");
  const glibc = /(\d+\.\d+)/.exec(glibcText)?.[1] ?? null;
  const mem = /MemTotal:\s+(\d+)\s*kB/.exec(get("mem"));
  const machine = get("machine");
  return {
    machine,
    arch: machine === "aarch64" ? "arm64" : machine === "x86_64" ? "x64" : machine,
    kernel: get("kernel"),
    hostname: get("hostname"),
    deviceTreeModel: get("model") || null,
    nvTegraRelease: get("tegra") || null,
    cpuinfo: get("cpuinfo") || null,
    glibc,
    memTotal: mem ? Number(mem[1]) * 1024 : undefined,
    nodeOnPath: get("node") || null,
  };
}
