/**
 * What each emulated board is made of: the qemu-user program and CPU model that execute its instructions, and the
 * files it shows inside its mount namespace (/proc/cpuinfo, the device-tree model, /etc/nv_tegra_release). The board
 * probe (boards.ts) detects the board from those files exactly as it would on the real one; nothing reads the
 * emulator's name.
 *
 * The qemu CPU model decides what runs: onnxruntime picks its kernels from the hardware capabilities qemu reports
 * (getauxval(AT_HWCAP), via pytorch/cpuinfo, which also reads the MIDR in /proc/cpuinfo). Checked here with qemu 7.2's
 * HWCAP (/proc/self/auxv under qemu-aarch64-static): cortex-a72 has no asimddp; cortex-a76 and neoverse-n1 have
 * asimddp and neither SVE nor i8mm; `max` has SVE and i8mm too, which would send onnxruntime down SMMLA/SVE paths no
 * Pi 5 or Orin has, so it is not used.
 */

/** The boards qat can emulate. */
export type EmulatedBoard = "rpi4" | "rpi5" | "orin" | "x64-haswell";
/** In the order messages list them: the default board (rpi4) first, the boards added later after the first two. */
export const EMULATED_BOARDS: readonly EmulatedBoard[] = ["rpi4", "x64-haswell", "rpi5", "orin"];

export const SYSROOT = "/usr/aarch64-linux-gnu";
/** The Debian packages an emulated arm64 board needs. */
export const DEBIAN_PACKAGES = [
  "qemu-user-static",
  "libc6-arm64-cross",
  "libstdc++6-arm64-cross",
  "libgcc-s1-arm64-cross",
];

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

/**
 * An arm64 /proc/cpuinfo: two processors (the emulated board gets 2 CPUs) of an Arm Ltd core (implementer 0x41),
 * `core` as "<part> r<variant>p<revision>", then the board's trailing lines.
 */
function armCpuinfo(core: string, features: string, bogomips: string, trailer = ""): string {
  const [, part, variant, revision] = /^(0x[0-9a-f]+) r(\d+)p(\d+)$/.exec(core)!;
  const cpu = (i: number): string =>
    `processor\t: ${i}\nBogoMIPS\t: ${bogomips}\nFeatures\t: ${features}\nCPU implementer\t: 0x41\n` +
    `CPU architecture: 8\nCPU variant\t: 0x${variant}\nCPU part\t: ${part}\nCPU revision\t: ${revision}\n`;
  return `${[0, 1].map(cpu).join("\n")}${trailer ? `\n${trailer}` : ""}`;
}

/** A Raspberry Pi 4 Model B's /proc/cpuinfo (2 of its 4 Cortex-A72 r0p3 cores). */
export const RPI4_CPUINFO = armCpuinfo(
  "0xd08 r0p3",
  "fp asimd evtstrm crc32 cpuid",
  "108.00",
  "Hardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 10000000qatemu01\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n",
);
export const RPI4_DEVICE_TREE_MODEL = "Raspberry Pi 4 Model B Rev 1.4";

/**
 * The Features line of a Pi 5 (Raspberry Pi OS) — and of the emulated Orin: asimddp is the Armv8.2 dot product
 * (SDOT/UDOT). qemu's cortex-a76 and neoverse-n1 models report exactly these hardware capabilities (evtstrm aside,
 * a kernel timer feature).
 */
const ARMV82_DOTPROD_FEATURES =
  "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp";

/**
 * A Raspberry Pi 5's /proc/cpuinfo (2 of its 4 Cortex-A76 r4p1 cores). Revision d04170 is the new-style code of a
 * Pi 5 (type 0x17) with 8 GB.
 */
export const RPI5_CPUINFO = armCpuinfo(
  "0xd0b r4p1",
  ARMV82_DOTPROD_FEATURES,
  "108.00",
  "Revision\t: d04170\nSerial\t\t: 10000000qatemu05\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n",
);
export const RPI5_DEVICE_TREE_MODEL = "Raspberry Pi 5 Model B Rev 1.0";

/**
 * A Jetson Orin's /proc/cpuinfo (L4T R36, 2 of its Cortex-A78AE r0p1 cores). The real board also lists uscat,
 * ilrcpc, flagm, paca and pacg; they are left out because qemu's neoverse-n1 model (the nearest it has: Armv8.2
 * with dot product, no SVE, no i8mm, like the A78AE) does not provide them, and cpuinfo must not promise what the
 * emulated CPU cannot run. Jetson kernels print no Model line: the board is told by /etc/nv_tegra_release and the CPU.
 */
export const ORIN_CPUINFO = armCpuinfo("0xd42 r0p1", ARMV82_DOTPROD_FEATURES, "62.50");

/**
 * /etc/nv_tegra_release in L4T's format for JetPack 6.0 (L4T R36.3). A real file also carries the build's GCID and
 * date; they are left out rather than made up (nothing reads them).
 */
export const ORIN_NV_TEGRA_RELEASE =
  "# R36 (release), REVISION: 3.0, BOARD: generic, EABI: aarch64\n# KERNEL_VARIANT: oot\n";

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
  /** The real board's CPU, when qemu's model is a stand-in (orin: neoverse-n1 for Cortex-A78AE). */
  realCpu: string;
  /** qemu's -L: the target's libraries (none when the host's own are the target's). */
  sysroot?: string;
  cpuinfo: string;
  /** /sys/firmware/devicetree/base/model (ARM boards). */
  deviceTreeModel?: string;
  /** Files laid over /etc (read-only overlay), e.g. nv_tegra_release. */
  etc?: Record<string, string>;
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
    realCpu: "Cortex-A72",
    sysroot: SYSROOT,
    cpuinfo: RPI4_CPUINFO,
    deviceTreeModel: RPI4_DEVICE_TREE_MODEL,
    packages: DEBIAN_PACKAGES,
  },
  rpi5: {
    id: "rpi5",
    title: "Raspberry Pi 5",
    arch: "arm64",
    qemu: "qemu-aarch64-static",
    cpu: "cortex-a76",
    realCpu: "Cortex-A76",
    sysroot: SYSROOT,
    cpuinfo: RPI5_CPUINFO,
    deviceTreeModel: RPI5_DEVICE_TREE_MODEL,
    packages: DEBIAN_PACKAGES,
  },
  orin: {
    id: "orin",
    title: "NVIDIA Jetson Orin",
    arch: "arm64",
    qemu: "qemu-aarch64-static",
    cpu: "neoverse-n1",
    realCpu: "Cortex-A78AE",
    sysroot: SYSROOT,
    cpuinfo: ORIN_CPUINFO,
    etc: { nv_tegra_release: ORIN_NV_TEGRA_RELEASE },
    packages: DEBIAN_PACKAGES,
  },
  "x64-haswell": {
    id: "x64-haswell",
    title: "x86-64 PC without VNNI (Haswell)",
    arch: "x64",
    qemu: "qemu-x86_64-static",
    cpu: HASWELL_QEMU_CPU,
    realCpu: "Intel Haswell",
    cpuinfo: HASWELL_CPUINFO,
    packages: ["qemu-user-static"],
  },
};
