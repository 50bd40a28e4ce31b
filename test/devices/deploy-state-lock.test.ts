/**
 * Two agents on one board: the home lock (a change waits for the holder, reads do not, a dead holder's lock is
 * broken at once), concurrent deploys that end consistent, and a model the board's runtime cannot load never made
 * current.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployModel, listModels, rollback } from "../../devices/deploy.js";
import { RemoteError } from "../../devices/errors.js";
import { connectAgent } from "../../devices/setup.js";
import type { LocalTransport } from "../../devices/transport/local.js";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, tensor } from "../../src/onnx/tensor.js";
import { complete, leftovers, linkOf, localBoard, shaOf, stateOf, variant } from "./deploy-state-fixture.js";
import { MNIST8 } from "./helpers.js";

let board: Awaited<ReturnType<typeof localBoard>>;
let t: LocalTransport;
let home: string;

beforeAll(async () => {
  board = await localBoard("qat-deploy-lock-");
  t = board.t;
  home = board.home;
});

afterAll(() => {
  t.abort();
  rmSync(board.dir, { recursive: true, force: true });
});

/** A lock file as an agent writes it, for process `pid` with start time `start`. */
function writeLock(pid: number, start: string | null): void {
  const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  const holder = { pid, start, boot, host: hostname(), op: "test", since: new Date().toISOString() };
  writeFileSync(join(home, "lock"), JSON.stringify(holder), { flag: "wx" });
}

function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

describe("two deploys at once", () => {
  it("end with a consistent state and both models complete (3 rounds)", async () => {
    for (const m of [variant("base-p"), variant("base-q")]) await deployModel(m.bytes, t, { keep: 2 });
    for (let round = 0; round < 3; round++) {
      const x = variant(`race-${round}-x`);
      const y = variant(`race-${round}-y`);
      const [dx, dy] = await Promise.all([
        deployModel(x.bytes, t, { keep: 2 }),
        deployModel(y.bytes, t, { keep: 2 }),
      ]);
      const s = stateOf(home);
      expect([x.sha, y.sha]).toContain(s.current);
      expect([...s.history].sort()).toEqual([x.sha, y.sha].sort());
      expect(s.history.at(-1)).toBe(s.current);
      // the later of the two saw the earlier as previous
      expect([dx.previous, dy.previous]).toContain(s.current === x.sha ? y.sha : x.sha);
      expect(complete(home, x.sha) && complete(home, y.sha)).toBe(true);
      expect(linkOf(home)).toBe(s.current);
      expect(leftovers(home)).toEqual([]);
      expect((await listModels(t)).models.map((m) => m.sha256).sort()).toEqual([x.sha, y.sha].sort());
    }
  });

  it("a model another session uploaded and has not deployed yet is not pruned", async () => {
    const x = variant("pin-x");
    const y = variant("pin-y");
    const one = (await connectAgent(t)).client;
    const two = (await connectAgent(t)).client;
    try {
      await one.put(x.bytes, { kind: "model" });
      await two.put(y.bytes, { kind: "model" });
      const first = await one.setCurrent(x.sha, 1);
      expect(first.removed).not.toContain(y.sha);
      expect(first.removed.length).toBeGreaterThan(0);
      const second = await two.setCurrent(y.sha, 1);
      expect(second).toMatchObject({ previous: x.sha, current: y.sha, history: [y.sha], removed: [x.sha] });
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe("the home lock", () => {
  it("a change waits for a live holder, reads do not", async () => {
    const a = variant("wait-a");
    await deployModel(a.bytes, t, { keep: 3 });
    writeLock(process.pid, startOf(process.pid)); // held by a live process (this one)
    try {
      const t0 = Date.now();
      const list = await listModels(t);
      expect(list.current).toBe(a.sha);
      let done = false;
      const rb = rollback(t).finally(() => {
        done = true;
      });
      await new Promise((r) => setTimeout(r, 1500));
      expect(done).toBe(false);
      expect(stateOf(home).current).toBe(a.sha);
      rmSync(join(home, "lock"));
      const r = await rb;
      expect(r.from).toBe(a.sha);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    } finally {
      rmSync(join(home, "lock"), { force: true });
    }
  });

  it("a lock left by a dead agent, or by a pid now reused, is broken at once", async () => {
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
    writeLock(Number(dead.stdout.toString()), "1");
    const b = variant("stale-b");
    const t0 = Date.now();
    await deployModel(b.bytes, t, { keep: 3 });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(existsSync(join(home, "lock"))).toBe(false);
    writeLock(process.pid, "1"); // this pid is alive but started at another time: not the holder
    const c = variant("stale-c");
    expect((await deployModel(c.bytes, t, { keep: 3 })).previous).toBe(b.sha);
    expect(existsSync(join(home, "lock"))).toBe(false);
  });
});

/** A one-node model on x[batch, 4]. */
function tiny(build: (g: Graph) => void): Uint8Array {
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: ["batch", 4] });
  build(g);
  return encodeModel(modelOf(g, { "": 17 }));
}

describe("a model the board cannot run is not made current", () => {
  async function refused(bytes: Uint8Array, pattern: RegExp): Promise<void> {
    const before = stateOf(home);
    const err = await deployModel(bytes, t, { name: "bad.onnx" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).code).toBe("model-load");
    const msg = (err as Error).message;
    expect(msg).toContain(shaOf(bytes).slice(0, 12));
    expect(msg).toContain("bad.onnx");
    expect(msg).toMatch(pattern);
    expect(msg).toContain(`current stays ${before.current!.slice(0, 12)}`);
    expect(stateOf(home)).toEqual(before);
    expect(linkOf(home)).toBe(before.current);
  }

  it("an operator onnxruntime does not have: refused at session creation, with onnxruntime's message", async () => {
    const bytes = tiny((g) => {
      g.op("NoSuchOperator", ["x"], {}, { output: "y" });
      g.outputs.push({ name: "y", dtype: "float32", shape: ["batch", 4] });
    });
    await refused(bytes, /cannot load .*NoSuchOperator/);
  });

  it("a model that loads but cannot run one inference: refused by the run on zeros", async () => {
    const bytes = tiny((g) => {
      const shape = g.constant("shape", tensor("int64", [1], [3]));
      g.op("Reshape", ["x", shape], {}, { output: "y" });
      g.outputs.push({ name: "y", dtype: "float32", shape: [3] });
    });
    await refused(bytes, /one inference on zero inputs \(x:float32\[1,4\]\) fails: .*reshape/i);
  });

  it("a truncated graph that still passes its sha256 (sent by a raw client): refused, current kept", async () => {
    const whole = readFileSync(MNIST8);
    const cut = whole.subarray(0, whole.length >> 1);
    const before = stateOf(home);
    const { client } = await connectAgent(t);
    try {
      const put = await client.put(cut, { kind: "model", name: "cut.onnx" });
      expect(put.sha256).toBe(shaOf(cut));
      const err = await client.setCurrent(put.sha256, 3).catch((e: unknown) => e);
      expect((err as RemoteError).code).toBe("model-load");
      expect((err as Error).message).toMatch(/cannot load model [0-9a-f]{12} \(cut\.onnx\)/);
    } finally {
      await client.close();
    }
    expect(stateOf(home)).toEqual(before);
    // the good model deploys over it as usual, and rollback still knows the history
    const ok = await deployModel(f32ModelVariant(), t, { keep: 3 });
    expect(ok.previous).toBe(before.current);
  });
});

function f32ModelVariant(): Uint8Array {
  return tiny((g) => {
    const w = g.constant("w", f32([4, 2], [1, 0, 0, 1, 1, 0, 0, 1]));
    g.op("MatMul", ["x", w], {}, { output: "y" });
    g.outputs.push({ name: "y", dtype: "float32", shape: ["batch", 2] });
  });
}
