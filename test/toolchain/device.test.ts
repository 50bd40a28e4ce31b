/**
 * The device commands driven through the built CLI (`node dist/toolchain/cli.js`): the registry, setup, deploy,
 * validate (mnist-8 on MNIST test images) and rollback, on the local board and on the emulated Raspberry Pi 4.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeModel, loadModel } from "../../src/onnx/codec.js";
import { MNIST8, SHARED } from "../devices/helpers.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "dist/toolchain/cli.js");
const dir = mkdtempSync(join(tmpdir(), "qat-device-cli-"));
const registry = join(dir, "devices.json");
const variantPath = join(dir, "mnist-8-variant.onnx");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>;
}

function qat(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, "--devices", registry, ...args],
      { cwd: ROOT, maxBuffer: 64 << 20, timeout: 300_000, env: { ...process.env, QAT_DEVICES: "" } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        let json: Record<string, unknown> = {};
        const last = stdout.trim().split("\n").at(-1) ?? "";
        if (last.startsWith("{")) json = JSON.parse(last) as Record<string, unknown>;
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

/** Build when dist is older than the sources of these commands (tsc writes dist even when others' files have errors). */
function ensureBuilt(): void {
  const srcs = [
    "toolchain/cli.ts",
    "toolchain/commands/device.ts",
    "toolchain/commands/deploy.ts",
    "toolchain/commands/validate.ts",
    "toolchain/device-flags.ts",
    "devices/validation/on-devices.ts",
    "devices/validation/format.ts",
    "devices/device-text.ts",
    "devices/inspect.ts",
    "devices/prepare-board.ts",
    "devices/deploy-file.ts",
    "devices/agent/agent.ts",
    "devices/serial/link.ts",
    "devices/transport/serial.ts",
    "devices/setup.ts",
    "devices/registry.ts",
  ];
  const newest = Math.max(...srcs.map((s) => statSync(join(ROOT, s)).mtimeMs));
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newest) return;
  try {
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], {
      cwd: ROOT,
      stdio: "pipe",
    });
  } catch {
    // type errors elsewhere do not stop the emit; the CLI's existence is checked below
  }
  if (!existsSync(CLI)) throw new Error(`the build did not produce ${CLI}`);
}

beforeAll(() => {
  ensureBuilt();
  const m = loadModel(MNIST8);
  m.producerName = "qat-cli-test-variant";
  writeFileSync(variantPath, encodeModel(m));
}, 300_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("qat device: the registry", () => {
  it("adds, lists, shows and removes devices; bad names and URIs exit 2 with a clear message", async () => {
    expect((await qat("device", "add", "box", "local", "--home", join(dir, "local-home"))).code).toBe(0);
    const emu = await qat(
      "device",
      "add",
      "pi-emu",
      "--emulated",
      "rpi4",
      "--home",
      join(dir, "emu-home"),
      "--json",
    );
    expect(emu.code).toBe(0);
    expect(emu.json.device).toMatchObject({ name: "pi-emu", uri: "emulated:rpi4" });
    expect((await qat("device", "add", "tmp", "serial:///dev/ttyUSB9?baud=921600")).code).toBe(0);
    const list = await qat("device", "list", "--json");
    expect((list.json.devices as { name: string }[]).map((d) => d.name)).toEqual(["box", "pi-emu", "tmp"]);
    expect(list.stderr).toMatch(/box\s+local/);
    const rm = await qat("device", "remove", "tmp");
    expect(rm.code).toBe(0);
    expect(rm.stdout).toMatch(/removed tmp/);

    const dup = await qat("device", "add", "box", "local");
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/already exists.*remove it first/);
    const badUri = await qat("device", "add", "x", "telnet://pi");
    expect(badUri.code).toBe(2);
    expect(badUri.stderr).toMatch(/not a device URI.*ssh:\/\/user@host/);
    const badSerial = await qat("device", "add", "x", "serial:///dev/ttyUSB0?speed=9600");
    expect(badSerial.code).toBe(2);
    expect(badSerial.stderr).toMatch(/unknown option 'speed'/);
    for (const args of [
      ["device", "info", "nope"],
      ["deploy", MNIST8, "--device", "nope"],
    ]) {
      const r = await qat(...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /no device named 'nope' in .*devices\.json — add it with `qat device add NAME URI`/,
      );
    }
    const noModel = await qat("deploy", join(dir, "missing.onnx"), "--device", "box");
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toMatch(/cannot read .*missing\.onnx/);
  });
});

describe("qat device/deploy/validate on the local board", () => {
  it("sets up once (then nothing to do), deploys, validates mnist-8 and rolls back", async () => {
    const before = await qat("device", "info", "box");
    // never set up: this host has no device secret for it yet (exit 2, what to run)
    expect(before.code).toBe(2);
    expect(before.stderr).toMatch(/no device secret .* run `qat device setup box`/);

    const setup = await qat("device", "setup", "box", "--json");
    expect(setup.code).toBe(0);
    expect(setup.json).toMatchObject({ changed: true, board: "generic-x64" });
    expect((await qat("device", "setup", "box", "--json")).json.changed).toBe(false);
    const info = await qat("device", "info", "box", "--json");
    expect(info.json).toMatchObject({ board: "generic-x64", current: null });
    expect((info.json.facts as { arch: string }).arch).toBe(process.arch);

    const a = await qat("deploy", MNIST8, "--device", "box", "--json");
    expect(a.code).toBe(0);
    expect(a.json).toMatchObject({ uploaded: true, previous: null });
    const b = await qat("deploy", variantPath, "--device", "box", "--keep", "2", "--json");
    expect(b.json).toMatchObject({ uploaded: true, previous: a.json.sha256 });
    const redeploy = await qat("deploy", variantPath, "--device", "box", "--keep", "2");
    expect(redeploy.stdout).toMatch(/already had .*; already current, keeping 2/);
    const models = await qat("device", "models", "box", "--json");
    expect(models.json.current).toBe(b.json.sha256);
    expect(models.json.history).toEqual([a.json.sha256, b.json.sha256]);

    const v = await qat(
      "validate",
      MNIST8,
      "--data",
      "mnist",
      "--data-dir",
      join(SHARED, "data"),
      "--device",
      "box",
      "--limit",
      "300",
      "--max-drift",
      "0.5",
    );
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/device\s+board\s+host acc\s+board acc\s+drift\s+agree/);
    expect(v.stdout).toMatch(/box\s+generic-x64\s+(\d+\.\d\d)%\s+\1%\s+0\.00 pt\s+100\.00%/);
    expect(v.stdout).toMatch(/per class\s+0:\+0\.0 1:\+0\.0/);
    expect(v.stdout).toMatch(/latency\s+p50 [\d.]+ ms\s+p90 [\d.]+ ms\s+p99 [\d.]+ ms/);
    expect(v.stdout).toMatch(/memory\s+peak [\d.]+ MiB/);
    expect(v.stderr).toMatch(
      /for the HTML report .*: add --save <file>, then qat report .* --device-report <file>/,
    );
    const vj = await qat(
      "validate",
      MNIST8,
      "--data",
      "mnist",
      "--data-dir",
      join(SHARED, "data"),
      "--device",
      "box",
      "--limit",
      "300",
      "--json",
    );
    const row = (vj.json.rows as { report: Record<string, number> }[])[0]!.report;
    expect(vj.json.samples).toBe(300);
    expect(row.boardAccuracy).toBe(row.hostAccuracy);
    expect(row.hostAccuracy).toBeGreaterThan(0.97); // mnist-8 scores 98.91% on the whole test set

    const rb = await qat("deploy", "--rollback", "--device", "box", "--json");
    expect(rb.code).toBe(0);
    expect(rb.json).toMatchObject({ from: b.json.sha256, to: a.json.sha256 });
    expect((await qat("device", "models", "box", "--json")).json.current).toBe(a.json.sha256);
    const again = await qat("deploy", "--rollback", "--device", "box");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no earlier version/);
  });

  it("exits 1 when a board of the fleet fails, still printing the others' rows", async () => {
    const r = await qat(
      "validate",
      MNIST8,
      "--data",
      "mnist",
      "--data-dir",
      join(SHARED, "data"),
      "--device",
      `box,serial://${dir}/no-such-tty?baud=115200`,
      "--limit",
      "50",
      "--max-drift",
      "1",
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/box\s+generic-x64/);
    expect(r.stdout).toMatch(/no-such-tty.*error: serial-missing/);
    expect(r.stderr).toMatch(/failed \(serial-missing\)/);
  });
});

/** `qat validate` of a model on the first 200 MNIST test images on the emulated Pi 4 (set up below). */
const validateOnEmulatedPi = (model: string, ...flags: string[]) =>
  qat(
    "validate",
    model,
    "--data",
    "mnist",
    "--data-dir",
    join(SHARED, "data"),
    "--device",
    "pi-emu",
    "--limit",
    "200",
    ...flags,
    "--json",
  );

describe("qat on the emulated Raspberry Pi 4 (arm64 under qemu-user)", () => {
  it("sets up, deploys and validates mnist-8 with the same accuracy as the host", async () => {
    const setup = await qat("device", "setup", "pi-emu", "--json");
    expect(setup.code).toBe(0);
    expect(setup.json).toMatchObject({ board: "raspberry-pi-4" });
    expect((setup.json.installed as { arch: string }).arch).toBe("arm64");
    const d = await qat("deploy", MNIST8, "--device", "pi-emu", "--json");
    expect(d.code).toBe(0);
    const v = await validateOnEmulatedPi(MNIST8, "--max-drift", "0");
    expect(v.code).toBe(0);
    const rep = (v.json.rows as { report: Record<string, unknown> }[])[0]!.report;
    expect(rep).toMatchObject({
      board: "raspberry-pi-4",
      arch: "arm64",
      samples: 200,
      drift: 0,
      agreement: 1,
    });
    expect(v.stderr).toMatch(/pi-emu\s+raspberry-pi-4/);
    expect(readFileSync(join(dir, "emu-home", "models", String(d.json.sha256), "model.onnx")).length).toBe(
      readFileSync(MNIST8).length,
    );
  });

  it("validates a PyTorch int8 export with [1]-shaped Q/DQ scales (normalised for ORT on host and board alike)", async () => {
    // bench/torch/export_qdq_scale1.py --mnist: QAT-trained in PyTorch 1.13, scales and zero points shaped [1]
    const torchInt8 = join(ROOT, "test", "import", "fixtures", "torch-qdq-mnist.onnx");
    const v = await validateOnEmulatedPi(torchInt8);
    expect(v.code, v.stderr).toBe(0);
    const rep = (v.json.rows as { report: Record<string, number> }[])[0]!.report;
    expect(rep).toMatchObject({ board: "raspberry-pi-4", samples: 200 });
    expect(rep.hostAccuracy).toBeGreaterThan(0.85);
    expect(Math.abs(rep.drift!)).toBeLessThanOrEqual(0.01);
    expect(rep.agreement).toBeGreaterThanOrEqual(0.99);
  });
});
