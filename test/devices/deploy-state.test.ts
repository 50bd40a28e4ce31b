/**
 * Crash-safe deploy state: the agent is killed with SIGKILL (its QAT_AGENT_CRASH_AT test hook) at each step of a
 * deploy of model B over model A, restarted, and must name a complete model as current and roll back to the right
 * one. Also the recovery of damaged and older-layout homes.
 */
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployModel, listModels, rollback } from "../../devices/deploy.js";
import type { LocalTransport } from "../../devices/transport/local.js";
import { complete, leftovers, linkOf, localBoard, stateOf, variant } from "./deploy-state-fixture.js";

let board: Awaited<ReturnType<typeof localBoard>>;
let t: LocalTransport;
let home: string;

beforeAll(async () => {
  board = await localBoard("qat-deploy-state-");
  t = board.t;
  home = board.home;
});

afterAll(() => {
  t.abort();
  rmSync(board.dir, { recursive: true, force: true });
});

/** History [Z, A] with A current, then B deployed by an agent that dies at `step`. */
async function crashDeploy(step: string) {
  const z = variant(`${step}-z`);
  const a = variant(`${step}-a`);
  const b = variant(`${step}-b`);
  await deployModel(z.bytes, t, { keep: 2 });
  await deployModel(a.bytes, t, { keep: 2 });
  const crash = board.crashing(step);
  await expect(deployModel(b.bytes, crash, { keep: 2 })).rejects.toThrow(/agent|exited|signal|stopped/i);
  const left = leftovers(home);
  const onDisk = stateOf(home);
  const after = await listModels(t); // a new agent: recovers what the killed one left
  return { z, a, b, left, onDisk, after };
}

describe("kill -9 at each step of a deploy", () => {
  it("after the upload: A stays current, rollback goes to Z", async () => {
    const { z, a, b, left, after } = await crashDeploy("after-upload");
    expect(left).toContain("lock"); // killed holding the lock: the next agent found it stale
    expect(after.current).toBe(a.sha);
    expect(after.history).toEqual([z.sha, a.sha]);
    expect(complete(home, a.sha)).toBe(true);
    expect(complete(home, b.sha)).toBe(true); // verified bytes in place, just not deployed
    expect(linkOf(home)).toBe(a.sha);
    expect(leftovers(home)).toEqual([]);
    expect((await rollback(t)).to).toBe(z.sha);
    expect(complete(home, z.sha)).toBe(true);
  });

  it("after the runtime check, before the state write: A stays current, rollback goes to Z", async () => {
    const { z, a, left, onDisk, after } = await crashDeploy("before-state-write");
    expect(left).toContain("lock");
    expect(onDisk.current).toBe(a.sha);
    expect(after.current).toBe(a.sha);
    expect(after.history).toEqual([z.sha, a.sha]);
    expect((await rollback(t)).to).toBe(z.sha);
  });

  it("after the state write (link not yet moved): B is current, the link is repaired, rollback goes to A", async () => {
    const { z, a, b, left, onDisk, after } = await crashDeploy("after-state-write");
    expect(left).toContain("lock");
    expect(onDisk).toMatchObject({ current: b.sha, history: [a.sha, b.sha] });
    expect(after.current).toBe(b.sha);
    expect(linkOf(home)).toBe(b.sha);
    expect(complete(home, b.sha)).toBe(true);
    // Z was to be pruned after the switch; the next deploy removes it
    expect(after.history).toEqual([a.sha, b.sha]);
    expect(existsSync(join(home, "models", z.sha))).toBe(true);
    const r = await rollback(t);
    expect(r).toMatchObject({ from: b.sha, to: a.sha });
    expect(complete(home, a.sha)).toBe(true);
  });

  it("during pruning: B is current, no half-removed model is left, rollback goes to A", async () => {
    const { z, a, b, left, after } = await crashDeploy("during-prune");
    expect(left).toContain("lock");
    expect(left.some((f) => f.startsWith(".trash."))).toBe(true); // Z was moved out, not yet deleted
    expect(after.current).toBe(b.sha);
    expect(after.history).toEqual([a.sha, b.sha]);
    expect(after.models.map((m) => m.sha256)).not.toContain(z.sha);
    expect(leftovers(home)).toEqual([]);
    expect((await rollback(t)).to).toBe(a.sha);
    // and the next deploy keeps the right ones
    const c = variant("during-prune-c");
    const d = await deployModel(c.bytes, t, { keep: 2 });
    expect(d.history).toEqual([a.sha, c.sha]);
    expect(complete(home, a.sha) && complete(home, c.sha)).toBe(true);
  });
});

describe("recovery on agent start", () => {
  it("migrates the older layout killed between pointer and history: rollback goes to the right model", async () => {
    const z = variant("legacy-z");
    const a = variant("legacy-a");
    const b = variant("legacy-b");
    for (const m of [z, a, b]) await deployModel(m.bytes, t, { keep: 3 });
    // what an older agent left when killed between moving `current` to B and writing history.json
    rmSync(join(home, "state.json"));
    rmSync(join(home, "current"));
    symlinkSync(join("models", b.sha), join(home, "current"));
    writeFileSync(join(home, "history.json"), JSON.stringify([z.sha, a.sha]));
    const after = await listModels(t);
    expect(after.current).toBe(b.sha);
    expect(after.history).toEqual([z.sha, a.sha, b.sha]);
    expect(stateOf(home)).toMatchObject({ current: b.sha, history: [z.sha, a.sha, b.sha] });
    expect(existsSync(join(home, "history.json"))).toBe(false);
    expect((await rollback(t)).to).toBe(a.sha);
  });

  it("discards a leftover temporary state file", async () => {
    const before = await listModels(t);
    writeFileSync(join(home, "state.json.99999999.tmp"), '{"format":1,"current":"torn');
    const after = await listModels(t);
    expect(after.current).toBe(before.current);
    expect(leftovers(home)).toEqual([]);
  });

  it("a current whose file no longer matches its sha256, or is gone, falls back to the last complete model", async () => {
    const p = variant("damage-p");
    const q = variant("damage-q");
    const r = variant("damage-r");
    for (const m of [p, q, r]) await deployModel(m.bytes, t, { keep: 3 });
    // same size, other bytes (a bad sector, a hand edit): caught by the hash, not by the size
    const file = join(home, "models", r.sha, "model.onnx");
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(file, bytes);
    const after = await listModels(t);
    expect(after.current).toBe(q.sha);
    expect(after.history.slice(-2)).toEqual([p.sha, q.sha]);
    expect(linkOf(home)).toBe(q.sha);
    rmSync(join(home, "models", q.sha), { recursive: true });
    const again = await listModels(t);
    expect(again.current).toBe(p.sha);
    expect(stateOf(home).current).toBe(p.sha);
  });
});
