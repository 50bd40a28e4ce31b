/**
 * Fault injection on a serial line: host ⇄ pty pair ⇄ line simulator ⇄ pty pair ⇄ agent. The simulator corrupts
 * 1% of the bytes and drops some, and cuts the line mid-transfer (shortly: the link rides it out; longer than the
 * link's dead time: the upload fails, and the next connection resumes it from the bytes the board kept). Every
 * transfer must end either complete with a matching sha256 or failed with the previous model intact; no model
 * file on the board may ever be corrupt.
 */

import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSecret } from "../../devices/agent/auth.js";
import { deployModel } from "../../devices/deploy.js";
import { openDevice } from "../../devices/registry.js";
import { LineSimulator } from "../../devices/serial/line-sim.js";
import { agentPath, connectAgent, setupDevice } from "../../devices/setup.js";
import { LocalTransport } from "../../devices/transport/local.js";
import type { SerialTransport } from "../../devices/transport/serial.js";
import { encodeModel, loadModel } from "../../src/onnx/codec.js";
import { MNIST8 } from "./helpers.js";
import { ptyPair, startSerialAgent } from "./serial-fixture.js";

const dir = mkdtempSync(join(tmpdir(), "qat-serial-faults-"));
const home = join(dir, "board-home");
const BAUD = 921600;
const stops: (() => Promise<void>)[] = [];
let sim: LineSimulator;
let hostTty: string;
let agentLog: () => string = () => "";

const models = [1, 2, 3, 4, 5].map((i) => {
  const m = loadModel(MNIST8);
  m.producerName = `qat-fault-variant-${i}`;
  const bytes = encodeModel(m);
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
});

const counts = {
  transfers: 0,
  completed: 0,
  failed: 0,
  retransmissions: 0,
  resumes: 0,
  resumedBytes: 0,
  corrupt: 0,
};

beforeAll(async () => {
  const setup = await setupDevice(new LocalTransport({ home }));
  const host = await ptyPair(dir, "host");
  stops.push(host.stop);
  const board = await ptyPair(dir, "board");
  stops.push(board.stop);
  sim = await LineSimulator.open(host.b, board.a, { seed: 9 });
  stops.push(() => sim.close());
  const agent = await startSerialAgent(
    process.execPath,
    agentPath(new LocalTransport({ home }), setup.key),
    home,
    board.b,
    BAUD,
  );
  stops.push(agent.stop);
  agentLog = agent.stderr;
  hostTty = host.a;
});

afterAll(async () => {
  if (process.env.QAT_DEBUG) console.log(agentLog());
  for (const s of stops.reverse()) await s().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function open(): Promise<SerialTransport> {
  const t = (await openDevice({
    name: "faulty",
    uri: `serial://${hostTty}?baud=${BAUD}&dead=3`,
  })) as SerialTransport;
  // the secret the local setup left in the board's home
  t.secret = readSecret(home) ?? undefined;
  return t;
}

/**
 * One transfer as `deployModel` does it (upload, then move current), through the client so the resume is visible.
 * `during` runs once the upload is under way (it cuts the line).
 */
async function transfer(
  m: { bytes: Uint8Array; sha256: string },
  during?: (t: SerialTransport, startedBytes: number) => Promise<void>,
): Promise<{ ok: boolean; resumedFrom: number; error?: Error }> {
  counts.transfers++;
  const t = await open();
  try {
    const { client } = await connectAgent(t);
    const started = t.stats.bytesSent;
    const watcher = during?.(t, started);
    try {
      const put = await client.put(m.bytes, { kind: "model", name: "fault-test" });
      expect(put.sha256).toBe(m.sha256);
      await client.setCurrent(put.sha256, 10);
      await client.close();
      counts.completed++;
      if (put.resumedFrom > 0) {
        counts.resumes++;
        counts.resumedBytes += put.resumedFrom;
      }
      return { ok: true, resumedFrom: put.resumedFrom };
    } catch (e) {
      counts.failed++;
      return { ok: false, resumedFrom: 0, error: e as Error };
    } finally {
      await watcher;
    }
  } finally {
    counts.retransmissions += t.stats.retransmissions;
    await t.close();
  }
}

/** Wait until `bytes` more stream bytes went out on the transport. */
async function sent(t: SerialTransport, from: number, bytes: number): Promise<void> {
  for (let i = 0; i < 2000 && t.stats.bytesSent - from < bytes; i++)
    await new Promise((r) => setTimeout(r, 5));
}

function current(): string | null {
  const p = join(home, "current");
  return existsSync(p) ? readlinkSync(p).split("/").pop()! : null;
}

/** Every model file on the board must hash to its folder's name. */
function scanBoard(): { models: string[]; corrupt: string[] } {
  const found = readdirSync(join(home, "models")).filter((d) => /^[0-9a-f]{64}$/.test(d));
  const corrupt = found.filter(
    (d) =>
      createHash("sha256")
        .update(readFileSync(join(home, "models", d, "model.onnx")))
        .digest("hex") !== d,
  );
  return { models: found, corrupt };
}

describe("serial transfers on a faulty line", () => {
  it("1% corrupted and 0.2% dropped bytes: transfers complete with matching sha256", {
    timeout: 300_000,
  }, async () => {
    sim.bytesPerMs = 0; // as fast as the ptys go: the noise is the test here
    sim.setFaults({ corrupt: 0.01, drop: 0.002 });
    const a = await transfer(models[0]!);
    expect(a.error).toBeUndefined();
    expect(current()).toBe(models[0]!.sha256);
    // the same through deployModel
    const t = await open();
    try {
      counts.transfers++;
      const d = await deployModel(models[1]!.bytes, t);
      counts.completed++;
      expect(d.sha256).toBe(models[1]!.sha256);
      counts.retransmissions += t.stats.retransmissions;
      expect(t.stats.badFrames).toBeGreaterThan(0);
    } finally {
      await t.close();
    }
    expect(current()).toBe(models[1]!.sha256);
    expect(sim.stats.corrupted).toBeGreaterThan(100);
    expect(sim.stats.dropped).toBeGreaterThan(10);
  });

  it("a short cut mid-transfer (under the link's dead time): the link retransmits and the transfer completes", async () => {
    sim.bytesPerMs = BAUD / 10 / 1000; // paced like a real 921600-baud line (10 bits a byte): 26 kB take 0.3 s
    sim.setFaults({ corrupt: 0.001 });
    const r = await transfer(models[2]!, async (t, from) => {
      await sent(t, from, 12_000);
      sim.cut(1200);
    });
    expect(r.error).toBeUndefined();
    expect(current()).toBe(models[2]!.sha256);
  });

  it("a long cut mid-transfer fails the upload with the previous model intact; the next one resumes", async () => {
    sim.setFaults({ corrupt: 0.001 });
    const before = current();
    const cut = await transfer(models[3]!, async (t, from) => {
      await sent(t, from, 22_000);
      sim.cut(4000);
    });
    expect(cut.ok).toBe(false);
    expect(cut.error!.message).toMatch(/serial link on .* lost: nothing heard from the board for 3 s/);
    expect(current()).toBe(before); // current never moved
    expect(existsSync(join(home, "models", models[3]!.sha256))).toBe(false); // no partial model among the models
    expect(scanBoard().corrupt).toEqual([]);
    await new Promise((r) => setTimeout(r, 4200)); // the line comes back
    const again = await transfer(models[3]!);
    expect(again.error).toBeUndefined();
    expect(again.resumedFrom).toBeGreaterThanOrEqual(4096); // continued from the bytes the board kept
    expect(current()).toBe(models[3]!.sha256);
  });

  it("noise and a long cut together: failure leaves the previous model, the retry resumes and completes", {
    timeout: 300_000,
  }, async () => {
    sim.setFaults({ corrupt: 0.01, drop: 0.002 });
    const before = current();
    const cut = await transfer(models[4]!, async (t, from) => {
      await sent(t, from, 10_000);
      sim.cut(4000);
    });
    if (!cut.ok) {
      expect(current()).toBe(before);
      await new Promise((r) => setTimeout(r, 4200));
      const again = await transfer(models[4]!);
      expect(again.error).toBeUndefined();
    }
    expect(current()).toBe(models[4]!.sha256);
    const scan = scanBoard();
    counts.corrupt = scan.corrupt.length;
    expect(scan.corrupt).toEqual([]);
    expect(scan.models.sort()).toEqual(models.map((m) => m.sha256).sort());
    expect(counts.resumes).toBeGreaterThanOrEqual(1);
    expect(
      readdirSync(join(home, "tmp")).filter((f) => !f.endsWith(".resume") && !f.endsWith(".json")),
    ).toEqual([]);
    console.log(
      `serial fault injection: ${counts.transfers} transfers (${counts.completed} completed, ${counts.failed} failed ` +
        `with the previous model intact), ${counts.retransmissions} retransmitted frames, ${counts.resumes} resumes ` +
        `(${counts.resumedBytes} bytes not resent), ${counts.corrupt} corrupt files; line: ${sim.stats.corrupted} bytes ` +
        `corrupted, ${sim.stats.dropped} dropped, ${sim.stats.cuts} cuts (${sim.stats.cutBytes} bytes lost)`,
    );
  });
});
