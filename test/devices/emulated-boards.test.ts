/**
 * The emulated Raspberry Pi 5 and Jetson Orin beside the Pi 4, with one int8 mnist-cnn from a short QAT run:
 * - each is detected by qat's own board probe from what it shows (cpuinfo's CPU part, features and Pi revision
 *   code; L4T's /etc/nv_tegra_release), not from the emulator's name;
 * - onnxruntime runs dot-product (UDOT) instructions on the Pi 5 and the Orin and none on the Pi 4: qemu's in_asm
 *   log of one validation batch lists every guest instruction it translated;
 * - one fleet validation (the host itself as a board, Pi 4, Pi 5, Orin) gives one table with the detected board
 *   names, and the emulated timings are labelled as emulation in the table, the JSON and the HTML report.
 * Real qemu-user in mount namespaces: root only, like the other emulated-board tests. One trained model, one setup
 * per board, one fleet run, one logged batch per board.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Detection } from "../../devices/boards.js";
import { setupDevice } from "../../devices/setup.js";
import {
  type EmulatedBoard,
  type Emulator,
  emulatedTransport,
  ensureEmulator,
} from "../../devices/transport/emulator.js";
import { LocalTransport } from "../../devices/transport/local.js";
import type { EvalSet } from "../../devices/validate.js";
import { formatDriftReport, validateFleet, validateModel } from "../../devices/validate.js";
import type { FleetReport } from "../../devices/validation/report.js";
import { openNamedDataset } from "../../src/data/named.js";
import { exportToFile } from "../../src/export/export.js";
import { train } from "../../src/pipeline/trainer.js";
import { writeReport } from "../../src/report/index.js";
import { DATA } from "../helpers/paths.js";

const BOARDS: EmulatedBoard[] = ["rpi4", "rpi5", "orin"];
const dir = mkdtempSync(join(tmpdir(), "qat-emulated-boards-"));
const emu = new Map<EmulatedBoard, Emulator>();
const detected = new Map<EmulatedBoard, Detection>();
let run: string;
let model: Uint8Array;
let set: EvalSet;
let fleet: FleetReport;
const SAMPLES = 200;

beforeAll(async () => {
  // a short QAT run of mnist-cnn, exported to int8 with its parity check
  const qat = await train(
    {
      model: "mnist-cnn",
      data: "mnist",
      dataDir: DATA,
      epochs: 1,
      seed: 1,
      threads: 1,
      evalLimit: 300,
      maxSteps: 120,
      qat: { preset: "ort-cpu", calibrationBatches: 2 },
    },
    { out: join(dir, "qat") },
  );
  run = qat.run;
  const test = await openNamedDataset("mnist", { split: "test", dataDir: DATA });
  const int8 = join(dir, "model.int8.onnx");
  const ex = await exportToFile(run, int8, { data: test, limit: 256, threads: 1 });
  expect(ex.written).toBe(true);
  model = readFileSync(int8);
  const inputs = new Float32Array(SAMPLES * 784);
  const y = new BigInt64Array(SAMPLES);
  test.fill(
    Array.from({ length: SAMPLES }, (_, i) => i),
    inputs,
    y,
  );
  set = { inputs, sampleShape: [1, 28, 28], labels: Array.from(y, Number) };
  for (const board of BOARDS) {
    const e = await ensureEmulator({ board, root: join(dir, board) });
    emu.set(board, e);
    const t = emulatedTransport(e);
    try {
      detected.set(board, (await setupDevice(t)).detection);
    } finally {
      t.abort();
    }
  }
  await setupDevice(new LocalTransport({ home: join(dir, "host-home"), label: "host" }));
}, 1_200_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("detection from what the board shows", () => {
  it("tells the Pi 4, Pi 5 and Orin apart by CPU part, features, Pi revision and L4T release", () => {
    const pi4 = detected.get("rpi4")!;
    expect(pi4.profile.id).toBe("raspberry-pi-4");
    expect(pi4.cpuFeatures).not.toContain("asimddp");
    expect(pi4.evidence).toContain("cpu: Cortex-A72 (part 0xd08)");
    const pi5 = detected.get("rpi5")!;
    expect(pi5.profile).toMatchObject({ id: "raspberry-pi-5", dotProduct: true });
    expect(pi5.evidence).toEqual([
      "model: Raspberry Pi 5 Model B Rev 1.0",
      "asimddp in cpuinfo: dot-product instructions (SDOT/UDOT) for int8 kernels",
      "cpu: Cortex-A76 (part 0xd0b)",
    ]);
    expect(pi5.warnings).toEqual([]);
    const orin = detected.get("orin")!;
    expect(orin.profile).toMatchObject({ id: "jetson-orin", dotProduct: true });
    expect(orin.evidence).toEqual([
      "/etc/nv_tegra_release: L4T R36.3.0",
      "asimddp in cpuinfo: dot-product instructions (SDOT/UDOT) for int8 kernels",
      "cpu: Cortex-A78AE (part 0xd42)",
    ]);
    expect(orin.warnings).toEqual([]);
    // the Orin's release file lives in its namespace only: the host's /etc is untouched
    expect(existsSync("/etc/nv_tegra_release")).toBe(false);
  });
});

/** Count the dot-product instructions qemu translated (its in_asm log, one file per process). */
function dotProducts(logDir: string): { udot: number; sdot: number } {
  const n = { udot: 0, sdot: 0 };
  for (const f of readdirSync(logDir)) {
    for (const m of readFileSync(join(logDir, f), "latin1").matchAll(/^0x[0-9a-f]+:\s+([0-9a-f]{8})\s/gm)) {
      const w = Number.parseInt(m[1]!, 16);
      // UDOT/SDOT (by element): 0Q101111 10LM Rm 1110 H0 Rn Rd; (vector): 0Q101110 100 Rm 100101 Rn Rd, U = bit 29
      const byElement = (w & 0x9fc0f400) >>> 0 === 0x0f80e000;
      const vector = (w & 0x9fe0fc00) >>> 0 === 0x0e809400;
      if (byElement || vector) n[w & 0x20000000 ? "udot" : "sdot"]++;
    }
  }
  return n;
}

describe("onnxruntime's int8 kernels", () => {
  it("run dot-product instructions on the Pi 5 and the Orin, none on the Pi 4, with the same results", async () => {
    const small: EvalSet = {
      ...set,
      inputs: set.inputs.subarray(0, 16 * 784),
      labels: Array.from(set.labels).slice(0, 16),
    };
    const counts: Record<string, { udot: number; sdot: number }> = {};
    const outputs: Record<string, number> = {};
    for (const board of BOARDS) {
      const logs = join(dir, `in_asm-${board}`);
      rmSync(logs, { recursive: true, force: true });
      mkdirSync(logs, { recursive: true });
      // qemu-user reads QEMU_LOG / QEMU_LOG_FILENAME (%d: the process id) from the environment
      const t = emulatedTransport(emu.get(board)!, {
        env: { QEMU_LOG: "in_asm", QEMU_LOG_FILENAME: join(logs, "qemu-%d.log") },
      });
      try {
        const r = await validateModel(model, small, t, { batchSize: 16 });
        outputs[board] = r.output.maxAbs;
        expect(r.agreement).toBe(1);
      } finally {
        t.abort();
      }
      counts[board] = dotProducts(logs);
      rmSync(logs, { recursive: true, force: true });
    }
    console.log(`dot-product instructions qemu translated in one batch: ${JSON.stringify(counts)}`);
    expect(counts.rpi4).toEqual({ udot: 0, sdot: 0 });
    expect(counts.rpi5!.udot + counts.rpi5!.sdot).toBeGreaterThan(0);
    expect(counts.orin!.udot + counts.orin!.sdot).toBeGreaterThan(0);
  }, 600_000);
});

describe("one fleet: the host, Pi 4, Pi 5, Orin", () => {
  beforeAll(async () => {
    fleet = await validateFleet(
      model,
      set,
      [
        {
          name: "host",
          open: async () => new LocalTransport({ home: join(dir, "host-home"), label: "host" }),
        },
        ...BOARDS.map((b) => ({ name: `emu-${b}`, open: async () => emulatedTransport(emu.get(b)!) })),
      ],
      { batchSize: 50, concurrency: 1 },
    );
    console.log(formatDriftReport(fleet));
  }, 900_000);

  it("has one row per board with the detected board names", () => {
    expect(fleet.failed).toBe(0);
    expect(fleet.rows.map((r) => [r.device, r.report?.board])).toEqual([
      ["host", "generic-x64"],
      ["emu-rpi4", "raspberry-pi-4"],
      ["emu-rpi5", "raspberry-pi-5"],
      ["emu-orin", "jetson-orin"],
    ]);
    const table = formatDriftReport(fleet);
    expect(table).toMatch(/emu-rpi5\s+raspberry-pi-5\s/);
    expect(table).toMatch(/emu-orin\s+jetson-orin\s/);
  });

  it("gives the three ARM boards the same outputs (exact int32 sums on every ARM kernel)", () => {
    const [, pi4, pi5, orin] = fleet.rows.map((r) => r.report!);
    expect(pi5!.boardAccuracy).toBe(pi4!.boardAccuracy);
    expect(orin!.boardAccuracy).toBe(pi4!.boardAccuracy);
    expect(pi5!.output.maxAbs).toBe(pi4!.output.maxAbs);
    expect(orin!.output.maxAbs).toBe(pi4!.output.maxAbs);
  });

  it("labels emulated timings as emulation in the table, the per-board text and the JSON", () => {
    const text = formatDriftReport(fleet);
    const rowOf = (d: string) => text.split("\n").find((l) => l.startsWith(`${d} `))!;
    expect(rowOf("host")).toMatch(/\sboard\s/);
    for (const b of BOARDS) expect(rowOf(`emu-${b}`)).toMatch(/\sEMULATED\s/);
    expect(text).toMatch(
      /^emu-rpi5: timings emulated: qemu-aarch64-static [\d.]+ -cpu cortex-a76 on the host's .+ — the emulator's speed, not a real Raspberry Pi 5's$/m,
    );
    expect(text).toMatch(
      /latency {4}p50 .* per sample — EMULATED, qemu-aarch64-static .* -cpu neoverse-n1 \(standing in for a Cortex-A78AE\)/,
    );
    const json = JSON.parse(JSON.stringify(fleet));
    expect(json.rows[0].report.latency).toEqual({ emulated: false });
    expect(json.rows[3].report.latency).toMatchObject({
      emulated: true,
      emulator: expect.stringMatching(/^qemu-aarch64-static /),
      cpu: "neoverse-n1",
      realCpu: "Cortex-A78AE",
    });
  });

  it("labels them in the HTML report's latency section", async () => {
    const file = join(dir, "device-report.json");
    writeFileSync(file, JSON.stringify({ model: "model.int8.onnx", dataset: "mnist", ...fleet }));
    const r = await writeReport(run, { deviceReport: file, out: join(dir, "report.html") });
    const html = readFileSync(r.out, "utf8");
    const latency = html.slice(html.indexOf('id="latency"'));
    expect(latency).toContain("Latency per sample on emu-rpi5 (EMULATED, not the board&#39;s speed)");
    expect(latency).toMatch(/emu-orin<\/td><td>per sample, EMULATED/);
    expect(latency).not.toMatch(/host<\/td><td>per sample, EMULATED/);
    expect(latency).toMatch(/emu-rpi4: timings emulated: qemu-aarch64-static/);
  });
});
