/**
 * `qat validate --task detect` on the emulated Raspberry Pi 4 (arm64 Node + onnxruntime-node's arm64 build under
 * qemu, Cortex-A72) and a local board: MediaPipe BlazeFace with the anchor spec of docs/detection.md on a small
 * YOLO-layout face set made from ../shared/data/images (two faces labelled by hand, five images without faces).
 * Host and board mAP, per-class AP delta, box agreement and latency come back; the HTML report opens in Chromium
 * without console errors, and its screenshot is kept as artifacts/detect-report.png. Root-only (the emulator uses
 * a mount namespace).
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSecret } from "../../devices/agent/auth.js";
import { writeDeviceSecret } from "../../devices/device-secrets.js";
import { setupBoard } from "../../devices/prepare-board.js";
import { addDevice } from "../../devices/registry.js";
import { agentPath, setupDevice } from "../../devices/setup.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { validateDetectOnDevices } from "../../devices/validation/detect.js";
import type { DetectValidationReport } from "../../src/detect/drift-report.js";
import { blazefaceSpecJson } from "../detect/blazeface-spec.js";
import { CLI, ROOT, SHARED } from "../helpers/paths.js";
import { ptyPair, startSerialAgent } from "./serial-fixture.js";
import { type Sshd, startSshd } from "./sshd.js";

const dir = mkdtempSync(join(tmpdir(), "qat-validate-detect-"));
const registry = join(dir, "devices.json");
const BLAZEFACE = join(SHARED, "models", "blazeface-front-128.onnx");
const SPEC = join(dir, "blazeface-front.json");
const DATA = join(dir, "faces");
const SCREENSHOT = join(ROOT, "artifacts", "detect-report.png");

/**
 * Faces labelled by hand from the photographs (512×512): the astronaut's face from hair line to chin and cheek to
 * cheek, x 176–274, y 72–186; the cameraman's face in profile, x 180–256, y 100–205. The rest have no face.
 */
const LABELS: Record<string, [number, number, number, number] | undefined> = {
  astronaut: [176, 72, 274, 186],
  camera: [180, 100, 256, 205],
  brick: undefined,
  chelsea: undefined,
  coffee: undefined,
  grass: undefined,
  rocket: undefined,
};

function faceSet(): void {
  mkdirSync(join(DATA, "images", "val"), { recursive: true });
  mkdirSync(join(DATA, "labels", "val"), { recursive: true });
  writeFileSync(join(DATA, "data.yaml"), "val: images/val\nnames: ['face']\n");
  for (const [name, box] of Object.entries(LABELS)) {
    const ext = existsSync(join(SHARED, "data", "images", `${name}.png`)) ? "png" : "jpg";
    copyFileSync(
      join(SHARED, "data", "images", `${name}.${ext}`),
      join(DATA, "images", "val", `${name}.${ext}`),
    );
    if (!box) continue;
    const [x1, y1, x2, y2] = box;
    const line = [0, (x1 + x2) / 2 / 512, (y1 + y2) / 2 / 512, (x2 - x1) / 512, (y2 - y1) / 512].join(" ");
    writeFileSync(join(DATA, "labels", "val", `${name}.txt`), `${line}\n`);
  }
}

beforeAll(async () => {
  faceSet();
  writeFileSync(SPEC, JSON.stringify(blazefaceSpecJson(), null, 2));
  addDevice({ name: "rpi4", uri: "emulated:rpi4", home: join(dir, "emu-home") }, { path: registry });
  addDevice({ name: "box", uri: "local", home: join(dir, "local-home") }, { path: registry });
  // install the agent and give board and host the device secret: the library for the board the library validates
  // on, `qat device setup` for the one the CLI validates on (each checks the agent install of its own build)
  await setupBoard({ device: "box", registry });
  const setup = spawnSync(process.execPath, [CLI, "device", "setup", "rpi4"], {
    encoding: "utf8",
    env: { ...process.env, QAT_DEVICES: registry },
  });
  if (setup.status !== 0) throw new Error(`qat device setup rpi4 failed: ${setup.stderr}`);
}, 600_000);
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("validateDetectOnDevices (library)", () => {
  it("BlazeFace on the local board: same detections as the host, the spec's face found", async () => {
    const { report } = await validateDetectOnDevices({
      model: BLAZEFACE,
      data: DATA,
      spec: SPEC,
      devices: ["box"],
      registry,
    });
    const row = report.rows[0]!;
    expect(row.error).toBeUndefined();
    expect(report.images).toBe(7);
    expect(report.head.format).toBe("anchors");
    // the same x86 kernels on both sides: identical outputs, identical detections
    expect(row.metrics!.map).toBe(report.host.metrics.map);
    expect(row.agreement!.share).toBe(1);
    expect(report.host.metrics.map50).toBeGreaterThan(0.4);
  });
});

/** An SSH board (OpenSSH on 127.0.0.1) and a serial board (the agent on one end of a socat pty pair). */
async function sshAndSerialBoards(): Promise<void> {
  const sshd: Sshd = await startSshd(join(dir, "sshd"));
  stops.push(() => sshd.stop());
  addDevice(
    {
      name: "ssh",
      uri: `ssh://${sshd.user}@127.0.0.1:${sshd.port}`,
      key: sshd.userKey,
      knownHostsFile: join(dir, "known_hosts"),
      acceptNew: true,
      node: process.execPath,
      home: join(dir, "ssh-home"),
    },
    { path: registry },
  );
  await setupBoard({ device: "ssh", registry });
  const home = join(dir, "serial-home");
  const local = new LocalTransport({ home });
  const setup = await setupDevice(local);
  const pty = await ptyPair(dir, "uart");
  stops.push(() => pty.stop());
  const agent = await startSerialAgent(process.execPath, agentPath(local, setup.key), home, pty.b, 921600);
  stops.push(() => agent.stop());
  addDevice({ name: "uart", uri: `serial://${pty.a}?baud=921600` }, { path: registry });
  writeDeviceSecret(registry, "uart", readSecret(home)!);
}

describe("SSH and serial boards alike", () => {
  it("validates BlazeFace over SSH and over a serial line: the host's detections, mAP and latency", async () => {
    await sshAndSerialBoards();
    const { report } = await validateDetectOnDevices({
      model: BLAZEFACE,
      data: DATA,
      spec: SPEC,
      limit: 3,
      devices: ["ssh", "uart"],
      registry,
    });
    expect(report.rows.map((r) => [r.device, r.error?.message])).toEqual([
      ["ssh", undefined],
      ["uart", undefined],
    ]);
    for (const row of report.rows) {
      expect(row.agreement!.share).toBe(1);
      expect(row.metrics!.map).toBe(report.host.metrics.map);
      expect(row.latencyMs!.inference.p50).toBeGreaterThan(0);
      expect(row.timing).toEqual({ emulated: false });
    }
    console.log(
      report.rows
        .map(
          (r) =>
            `${r.device}: mAP50-95 ${r.metrics!.map.toFixed(3)}, agreement ${r.agreement!.matched}/${r.agreement!.hostDetections}, inference p50 ${r.latencyMs!.inference.p50.toFixed(1)} ms`,
        )
        .join("; "),
    );
  }, 600_000);
});

describe("qat validate --task detect on the emulated Raspberry Pi 4", () => {
  it("prints host and board mAP, agreement and latency; the report opens in Chromium", async () => {
    const save = join(dir, "detect.json");
    const html = join(dir, "detect.html");
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        "validate",
        BLAZEFACE,
        "--task",
        "detect",
        "--data",
        DATA,
        "--detect-spec",
        SPEC,
        "--device",
        "rpi4",
        "--save",
        save,
        "--html",
        html,
        "--json",
      ],
      { encoding: "utf8", env: { ...process.env, QAT_DEVICES: registry } },
    );
    console.log(r.stderr);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as DetectValidationReport;
    const row = report.rows[0]!;
    expect(row.board).toBe("raspberry-pi-4");
    expect(row.arch).toBe("arm64");
    expect(row.timing?.emulated).toBe(true); // the latency is qemu's on this host, and the report says so
    // ARM and x86 sum in another order: equal to float rounding, so the boxes agree and the mAP barely moves
    expect(row.agreement!.share).toBe(1);
    expect(Math.abs(row.delta!.map)).toBeLessThan(0.01);
    expect(row.latencyMs!.inference.p50).toBeGreaterThan(0);
    expect(row.latencyMs!.post.p50).toBeGreaterThan(0);
    expect(JSON.parse(readFileSync(save, "utf8"))).toEqual(report);

    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-gpu"],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
      const errors: string[] = [];
      page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
      page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
      page.on("requestfailed", (q) => errors.push(`request failed: ${q.url()}`));
      await page.goto(pathToFileURL(html).href);
      const pr = await page.locator("figure[data-chart^='pr-'] svg path").count();
      const panels = await page.locator(".detect-panel svg image").count();
      const boxes = await page.locator(".detect-panel svg rect").count();
      mkdirSync(join(ROOT, "artifacts"), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(errors).toEqual([]);
      expect(pr).toBeGreaterThan(0);
      // six samples, host and board panels each, every image embedded
      expect(panels).toBe(2 * 6);
      expect(boxes).toBeGreaterThan(0);
    } finally {
      await browser.close();
    }
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
    console.log(`screenshot of the detection report: ${SCREENSHOT}`);
  }, 600_000);
});
