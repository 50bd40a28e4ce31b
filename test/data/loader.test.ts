import { describe, expect, it } from "vitest";
import { ArrayDataset, type Dataset } from "../../src/data/dataset.js";
import { DataError } from "../../src/data/errors.js";
import { type Batch, DataLoader } from "../../src/data/loader.js";

/** n items of 2 features: item i = (i, -i), label i % 3. */
function toy(n: number): ArrayDataset {
  const data = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) data.set([i, -i], 2 * i);
  return new ArrayDataset({
    name: "toy",
    inputShape: [2],
    numClasses: 3,
    data,
    labels: Int32Array.from({ length: n }, (_, i) => i % 3),
  });
}

async function collect(
  it: AsyncIterable<Batch>,
): Promise<{ epoch: number; batch: number; items: number[] }[]> {
  const out = [];
  for await (const b of it) {
    for (let k = 0; k < b.size; k++) {
      expect(b.x[2 * k]).toBe(b.items[k]);
      expect(b.y[k]).toBe(BigInt(b.items[k]! % 3));
    }
    out.push({ epoch: b.epoch, batch: b.batch, items: [...b.items] });
  }
  return out;
}

describe("DataLoader", () => {
  it("visits every item once per epoch, in a seeded order that repeats for the same seed", async () => {
    const ds = toy(103);
    const a = await collect(
      new DataLoader(ds, { batchSize: 10, seed: 7 }).iterate(undefined, { epoch: 2, batch: 0 }),
    );
    const b = await collect(
      new DataLoader(ds, { batchSize: 10, seed: 7 }).iterate(undefined, { epoch: 2, batch: 0 }),
    );
    const c = await collect(new DataLoader(ds, { batchSize: 10, seed: 8 }).epoch(0));
    expect(a).toEqual(b);
    expect(a.length).toBe(22);
    expect(a[10]!.items.length).toBe(3);
    for (const e of [0, 1]) {
      const items = a.filter((x) => x.epoch === e).flatMap((x) => x.items);
      expect([...items].sort((p, q) => p - q)).toEqual(Array.from({ length: 103 }, (_, i) => i));
    }
    const e0 = a.filter((x) => x.epoch === 0).flatMap((x) => x.items);
    const e1 = a.filter((x) => x.epoch === 1).flatMap((x) => x.items);
    expect(e0).not.toEqual(e1);
    expect(c.flatMap((x) => x.items)).not.toEqual(e0);
    expect(e0).not.toEqual(Array.from({ length: 103 }, (_, i) => i));
  });

  it("keeps the order without shuffling and drops the last short batch when asked", async () => {
    const plain = await collect(
      new DataLoader(toy(7), { batchSize: 3, shuffle: false, dropLast: true }).epoch(0),
    );
    expect(plain.map((b) => b.items)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
  });

  it("resumes at (epoch, batch) with exactly the batches the full run had there", async () => {
    const ds = toy(50);
    const full = await collect(
      new DataLoader(ds, { batchSize: 8, seed: 3 }).iterate(undefined, { epoch: 3, batch: 0 }),
    );
    const resumed = await collect(
      new DataLoader(ds, { batchSize: 8, seed: 3 }).iterate({ epoch: 1, batch: 4 }, { epoch: 3, batch: 0 }),
    );
    expect(resumed).toEqual(full.slice(7 + 4));
    expect(() => new DataLoader(ds, { batchSize: 8 }).iterate({ epoch: 0, batch: 7 })).toThrow(
      /an epoch has 7 batches/,
    );
  });

  it("fills ahead while the consumer awaits, never more than `prefetch` batches, and reuses buffers", async () => {
    const base = toy(64);
    const log: string[] = [];
    const spy: Dataset = {
      ...base,
      name: base.name,
      inputShape: base.inputShape,
      numClasses: base.numClasses,
      length: base.length,
      stats: () => base.stats(),
      fill: (i, x, y, ctx) => {
        log.push("fill");
        base.fill(i, x, y, ctx);
      },
    };
    const loader = new DataLoader(spy, { batchSize: 4, prefetch: 3, shuffle: false });
    const buffers = new Set<ArrayBufferLike>();
    let consumed = 0;
    for await (const b of loader.epoch(0)) {
      buffers.add(b.x.buffer);
      log.push("step");
      consumed++;
      const filled = log.filter((s) => s === "fill").length;
      expect(filled - consumed).toBeLessThanOrEqual(3);
      const before = filled;
      // a training step: the JS thread is free while ORT runs; the loader fills the next batches meanwhile
      await new Promise((r) => setTimeout(r, 2));
      if (consumed < 14) expect(log.filter((s) => s === "fill").length).toBeGreaterThan(before);
    }
    expect(consumed).toBe(16);
    expect(buffers.size).toBe(4); // prefetch + 1 slots
    // after the first step, every step found its batch already filled
    expect(log.slice(0, 4)).toEqual(["fill", "step", "fill", "fill"]);
  });

  it("passes a fill error (e.g. an unreadable image) to the consumer, after the batches before it", async () => {
    const base = toy(20);
    const failing: Dataset = Object.assign(Object.create(base) as ArrayDataset, {
      fill(i: ArrayLike<number>, x: Float32Array, y: BigInt64Array) {
        if (Array.from(i).includes(13)) throw new DataError("unreadable image", { file: "img13.png" });
        base.fill(i, x, y);
      },
    });
    const seen: number[] = [];
    const run = async () => {
      for await (const b of new DataLoader(failing, { batchSize: 5, shuffle: false }).epoch(0))
        seen.push(b.batch);
    };
    await expect(run()).rejects.toThrow(/img13\.png: unreadable image/);
    expect(seen).toEqual([0, 1]);
  });
});
