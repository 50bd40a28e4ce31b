/**
 * The parts of the emulated Pi 5 and Orin that need no qemu: detection from cpuinfo alone (the Pi revision code, the
 * CPU part, asimddp) and from L4T's release file, the warnings when the CPU is not the board's, the emulated board
 * specs, and reading the latency label back from a device report.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { detectBoard } from "../../devices/boards.js";
import {
  EMULATED,
  EMULATED_BOARDS,
  emulatedBoard,
  emulationOf,
  ORIN_CPUINFO,
  ORIN_NV_TEGRA_RELEASE,
  RPI4_CPUINFO,
  RPI5_CPUINFO,
} from "../../devices/transport/emulator.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { latencySource } from "../../devices/validation/timing.js";
import { readDeviceReport } from "../../src/report/device-report.js";

const arm = { arch: "arm64", machine: "aarch64", glibc: "2.36" } as const;
const dir = mkdtempSync(join(tmpdir(), "qat-emulated-units-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("detecting a Pi 5 and an Orin from cpuinfo and nv_tegra_release", () => {
  it("takes a Pi 5 from cpuinfo alone: its Model line, else its revision code", () => {
    const pi5 = detectBoard({ ...arm, cpuinfo: RPI5_CPUINFO });
    expect(pi5.profile.id).toBe("raspberry-pi-5");
    expect(pi5.cpuParts).toEqual(["0xd0b"]);
    expect(pi5.cpuFeatures).toContain("asimddp");
    const noModel = detectBoard({ ...arm, cpuinfo: RPI5_CPUINFO.replace(/^Model.*$/m, "") });
    expect(noModel.profile.id).toBe("raspberry-pi-5");
    expect(noModel.evidence[0]).toBe("cpuinfo revision d04170: Raspberry Pi 5");
    const pi4 = detectBoard({ ...arm, cpuinfo: RPI4_CPUINFO.replace(/^Model.*$/m, "") });
    expect(pi4.evidence[0]).toBe("cpuinfo revision c03114: Raspberry Pi 4B");
    // an old-style revision code (bit 23 clear) says nothing about the board type
    expect(detectBoard({ ...arm, cpuinfo: "Revision\t: a02082\n" }).profile.id).toBe("generic-arm64");
  });

  it("takes an Orin from L4T R36 and a Cortex-A78AE, and says when the CPU is not the board's", () => {
    const orin = detectBoard({ ...arm, cpuinfo: ORIN_CPUINFO, nvTegraRelease: ORIN_NV_TEGRA_RELEASE });
    expect(orin.profile.id).toBe("jetson-orin");
    expect(orin.warnings).toEqual([]);
    // JetPack 5 (R35) also runs on Xavier (NVIDIA Carmel cores): still the Orin profile, with a warning
    const xavier = detectBoard({
      ...arm,
      cpuinfo: "CPU implementer\t: 0x4e\nCPU part\t: 0x004\nFeatures\t: fp asimd asimddp\n",
      nvTegraRelease: "# R35 (release), REVISION: 5.0",
    });
    expect(xavier.profile.id).toBe("jetson-orin");
    expect(xavier.warnings).toEqual([
      "the CPU (part 0x004) is not the Cortex-A78AE (0xd42) of a NVIDIA Jetson Orin (JetPack 5/6)",
    ]);
    const odd = detectBoard({
      ...arm,
      deviceTreeModel: "Raspberry Pi 5 Model B Rev 1.0",
      cpuinfo: RPI4_CPUINFO.replace(/^Model.*$/m, ""),
    });
    expect(odd.profile.id).toBe("raspberry-pi-5");
    expect(odd.warnings).toEqual([
      "the CPU (part 0xd08) is not the Cortex-A76 (0xd0b) of a Raspberry Pi 5",
      "the CPU lacks dot-product instructions (asimddp), unlike a typical Raspberry Pi 5",
    ]);
  });
});

describe("the emulated boards", () => {
  it("run the Pi 5 and the Orin on qemu CPU models with dot product and without SVE or i8mm", () => {
    expect(EMULATED_BOARDS).toEqual(["rpi4", "x64-haswell", "rpi5", "orin"]);
    expect(EMULATED.rpi5).toMatchObject({ cpu: "cortex-a76", realCpu: "Cortex-A76", arch: "arm64" });
    expect(EMULATED.orin).toMatchObject({ cpu: "neoverse-n1", realCpu: "Cortex-A78AE" });
    expect(EMULATED.orin.etc).toEqual({ nv_tegra_release: ORIN_NV_TEGRA_RELEASE });
    expect(EMULATED.orin.deviceTreeModel).toBeUndefined();
    expect(() => emulatedBoard("rpi6")).toThrow(/choose one of: rpi4, x64-haswell, rpi5, orin/);
  });

  it("labels a board that is not emulated as measured on the board", () => {
    const t = new LocalTransport({ home: join(dir, "h") });
    expect(emulationOf(t)).toBeUndefined();
    expect(latencySource(t)).toEqual({ emulated: false });
  });
});

describe("the latency label in a saved device report", () => {
  const board = {
    device: "emu-rpi5",
    samples: 4,
    hostAccuracy: 1,
    boardAccuracy: 1,
    drift: 0,
    agreement: 1,
    perClass: [],
    output: { name: "y", maxAbs: 0, meanAbs: 0, refMaxAbs: 1 },
    latencyMs: { p50: 1, p90: 1, p99: 1, mean: 1, max: 1 },
    batchSize: 4,
    peakRssBytes: 1,
    exceeded: false,
  };
  const write = (name: string, o: unknown): string => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify(o));
    return f;
  };

  it("is read back, absent in older reports, and a mistyped one is named", () => {
    const note = "emulated: qemu-aarch64-static 7.2.22 -cpu cortex-a76 …";
    const r = readDeviceReport(
      write("a.json", { ...board, latency: { emulated: true, note, cpu: "cortex-a76" } }),
    );
    expect(r.boards[0]!.latency).toEqual({ emulated: true, note });
    expect(readDeviceReport(write("b.json", board)).boards[0]!.latency).toBeUndefined();
    expect(() => readDeviceReport(write("c.json", { ...board, latency: { emulated: "yes" } }))).toThrow(
      /\$\.latency\.emulated is not true or false/,
    );
  });
});
