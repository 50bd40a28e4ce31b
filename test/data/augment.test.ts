import { describe, expect, it } from "vitest";
import { augment } from "../../src/data/augment.js";
import { ArrayDataset } from "../../src/data/dataset.js";
import { splitValidation } from "../../src/data/split.js";

const C = 2;
const H = 4;
const W = 5;
/** 40 images 2×4×5; value = 1 + item*100 + c*20 + y*5 + x, so every pixel says where it came from. */
function images(n = 40): ArrayDataset {
  const data = new Float32Array(n * C * H * W);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) data[((i * C + c) * H + y) * W + x] = 1 + i * 100 + c * 20 + y * 5 + x;
  return new ArrayDataset({
    name: "img",
    inputShape: [C, H, W],
    numClasses: 2,
    data,
    labels: Int32Array.from({ length: n }, (_, i) => i % 2),
  });
}

function get(ds: { fill: ArrayDataset["fill"] }, idx: number[], epoch: number): Float32Array {
  const x = new Float32Array(idx.length * C * H * W);
  ds.fill(idx, x, new BigInt64Array(idx.length), { epoch });
  return x;
}

describe("augmentation", () => {
  it("crops with zero padding and flips exactly as drawn", () => {
    const base = images();
    const aug = augment(base, { seed: 1, cropPadding: 2, flip: true });
    let flips = 0;
    for (let i = 0; i < 40; i++) {
      const { dy, dx, flip } = aug.draw(3, i);
      expect(dy >= 0 && dy <= 4 && dx >= 0 && dx <= 4).toBe(true);
      if (flip) flips++;
      const out = get(aug, [i], 3);
      for (let c = 0; c < C; c++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const sy = y + dy - 2;
            const sx = (flip ? W - 1 - x : x) + dx - 2;
            const want = sy >= 0 && sy < H && sx >= 0 && sx < W ? 1 + i * 100 + c * 20 + sy * 5 + sx : 0;
            expect(out[(c * H + y) * W + x]).toBe(want);
          }
    }
    expect(flips).toBeGreaterThan(8);
    expect(flips).toBeLessThan(32);
  });

  it("is deterministic in (seed, epoch, item), whatever batch the item is in", () => {
    const base = images();
    const a = augment(base, { seed: 5, cropPadding: 1, flip: true });
    const b = augment(base, { seed: 5, cropPadding: 1, flip: true });
    const size = C * H * W;
    const batch = get(a, [7, 3, 12], 2);
    expect(get(b, [7, 3, 12], 2)).toEqual(batch);
    expect(get(b, [12], 2)).toEqual(batch.subarray(2 * size));
    expect(get(a, [7, 3, 12], 3)).not.toEqual(batch);
    expect(get(augment(base, { seed: 6, cropPadding: 1, flip: true }), [7, 3, 12], 2)).not.toEqual(batch);
    // no crop, no flip: the stored values unchanged
    expect(get(augment(base, { seed: 5 }), [4], 0)).toEqual(get(base, [4], 0));
    expect(() =>
      augment(
        new ArrayDataset({
          name: "t",
          inputShape: [3],
          numClasses: 1,
          data: new Float32Array(3),
          labels: new Int32Array(1),
        }),
        { seed: 0, flip: true },
      ),
    ).toThrow(/need images of shape \[C,H,W\]/);
  });
});

describe("validation split", () => {
  it("holds out a seeded fraction, disjoint from training, the same for the same seed", () => {
    const ds = images(40);
    const s1 = splitValidation(ds, { fraction: 0.25, seed: 9 });
    const s2 = splitValidation(ds, { fraction: 0.25, seed: 9 });
    const s3 = splitValidation(ds, { fraction: 0.25, seed: 10 });
    expect([s1.train.length, s1.val.length]).toEqual([30, 10]);
    expect([...s1.val.items]).toEqual([...s2.val.items]);
    expect([...s1.val.items]).not.toEqual([...s3.val.items]);
    expect([...s1.train.items, ...s1.val.items].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 40 }, (_, i) => i),
    );
    // a subset fills from its own indices
    const v0 = s1.val.items[0]!;
    expect(get(s1.val, [0], 0)).toEqual(get(ds, [v0], 0));
    expect(() => splitValidation(ds, { fraction: 1, seed: 0 })).toThrow(/between 0 and 1/);
    expect(() => splitValidation(ds, { fraction: 0.001, seed: 0 })).toThrow(/leaves 0 for validation/);
  });
});
