import { describe, expect, test } from "vitest";
import {
  BatchNorm2d,
  Conv2d,
  Dropout,
  Flatten,
  Linear,
  NetBuilder,
  NnError,
  named,
  ReLU,
  sequential,
} from "../../src/nn/index.js";
import { modelOf } from "../../src/onnx/codec.js";
import { f32, numel } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { Rng } from "../../src/util/rng.js";

const input = (n: number, shape: number[], seed = 5) =>
  f32([n, ...shape], new Rng(seed).uniformArray(n * numel(shape), -2, 3));

describe("initialisation", () => {
  test("kaiming_uniform(a=√5) and bias bounds are 1/√fan_in, values spread over the range", () => {
    const m = sequential("t", [16, 5, 5], [Conv2d(32, 3), Flatten(), Linear(7)], { seed: 9 });
    const check = (name: string, bound: number) => {
      const d = m.train.initializers.get(name)!.data as Float32Array;
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of d) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      expect(hi).toBeLessThanOrEqual(bound);
      expect(lo).toBeGreaterThanOrEqual(-bound);
      if (d.length > 100) expect(hi - lo).toBeGreaterThan(1.9 * bound);
    };
    check("0.weight", 1 / Math.sqrt(16 * 9));
    check("0.bias", 1 / Math.sqrt(16 * 9));
    check("2.weight", 1 / Math.sqrt(32 * 3 * 3));
    check("2.bias", 1 / Math.sqrt(32 * 3 * 3));
    // a uniform(±b) has variance b²/3
    const w = m.train.initializers.get("0.weight")!.data as Float32Array;
    const variance = w.reduce((a, v) => a + v * v, 0) / w.length;
    expect(Math.abs(variance / (1 / (16 * 9) / 3) - 1)).toBeLessThan(0.06);
  });

  test("BatchNorm starts at γ=1, β=0, running mean 0, running var 1", () => {
    const m = sequential("t", [4, 3, 3], [BatchNorm2d()]);
    expect(Array.from(m.train.initializers.get("0.weight")!.data as Float32Array)).toEqual([1, 1, 1, 1]);
    expect(Array.from(m.train.initializers.get("0.bias")!.data as Float32Array)).toEqual([0, 0, 0, 0]);
    expect(Array.from(m.train.initializers.get("0.running_mean")!.data as Float32Array)).toEqual([
      0, 0, 0, 0,
    ]);
    expect(Array.from(m.train.initializers.get("0.running_var")!.data as Float32Array)).toEqual([1, 1, 1, 1]);
  });
});

describe("BatchNorm running statistics", () => {
  test("follow PyTorch: momentum 0.1 and the unbiased batch variance", async () => {
    const [n, c, h, w] = [5, 3, 4, 2];
    const m = sequential("bn", [c, h, w], [named("bn", BatchNorm2d())]);
    // non-trivial starting statistics
    m.train.initializers.set("bn.running_mean", f32([c], [0.5, -1, 2]));
    m.train.initializers.set("bn.running_var", f32([c], [2, 0.25, 1]));
    const x = input(n, [c, h, w]);
    const s = await openSession(modelOf(m.train), { threads: 1 });
    const out = await run(s, { x });
    const xs = x.data as Float32Array;
    const count = n * h * w;
    for (let ch = 0; ch < c; ch++) {
      const vals: number[] = [];
      for (let b = 0; b < n; b++) for (let i = 0; i < h * w; i++) vals.push(xs[(b * c + ch) * h * w + i]!);
      const mean = vals.reduce((a, v) => a + v, 0) / count;
      const unbiased = vals.reduce((a, v) => a + (v - mean) ** 2, 0) / (count - 1);
      const biased = (unbiased * (count - 1)) / count;
      const rm0 = [0.5, -1, 2][ch]!;
      const rv0 = [2, 0.25, 1][ch]!;
      expect((out["bn.running_mean.next"]!.data as Float32Array)[ch]).toBeCloseTo(0.9 * rm0 + 0.1 * mean, 5);
      expect((out["bn.running_var.next"]!.data as Float32Array)[ch]).toBeCloseTo(
        0.9 * rv0 + 0.1 * unbiased,
        5,
      );
      // and the output is normalised with the biased batch variance
      const y0 = (out.logits!.data as Float32Array)[ch * h * w]!;
      expect(y0).toBeCloseTo((xs[ch * h * w]! - mean) / Math.sqrt(biased + 1e-5), 4);
    }
    expect(Number((out["bn.num_batches_tracked.next"]!.data as BigInt64Array)[0])).toBe(1);
  });

  test("the eval graph normalises with the running statistics", async () => {
    const m = sequential("bn", [2, 1, 1], [BatchNorm2d()]);
    m.eval.initializers.set("0.running_mean", f32([2], [1, -1]));
    m.eval.initializers.set("0.running_var", f32([2], [4, 9]));
    const s = await openSession(modelOf(m.eval), { threads: 1 });
    const out = await run(s, { x: f32([1, 2, 1, 1], [3, 2]) });
    const y = out.logits!.data as Float32Array;
    expect(y[0]).toBeCloseTo(2 / Math.sqrt(4 + 1e-5), 5);
    expect(y[1]).toBeCloseTo(3 / Math.sqrt(9 + 1e-5), 5);
  });
});

describe("layers", () => {
  test("Dropout drops in the training graph only, scaling kept values by 1/(1-p)", async () => {
    const m = sequential("d", [1000], [Dropout(0.25)]);
    const x = f32([2, 1000], new Float32Array(2000).fill(1));
    const train = await run(await openSession(modelOf(m.train), { threads: 1 }), { x });
    const ev = await run(await openSession(modelOf(m.eval), { threads: 1 }), { x });
    const t = train.logits!.data as Float32Array;
    const zeros = t.filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(400);
    expect(zeros).toBeLessThan(600);
    for (const v of t) if (v !== 0) expect(v).toBeCloseTo(1 / 0.75, 5);
    expect(Array.from(ev.logits!.data as Float32Array).every((v) => v === 1)).toBe(true);
  });

  test("activations, pools, residual add and concat compute what PyTorch's modules do", async () => {
    const b = new NetBuilder("f", [2, 4, 4]);
    const x = b.input;
    const outs = [
      b.leakyRelu(x, 0.1),
      b.relu6(x),
      b.hardSwish(x),
      b.sigmoid(x),
      b.tanh(x),
      b.add(x, x),
      b.concat([x, x]),
    ];
    const pools = [
      b.maxPool2d(x, { kernel: 2 }),
      b.avgPool2d(x, { kernel: 3, stride: 1, padding: 1 }),
      b.globalAvgPool(x),
    ];
    const m = b.build(b.relu(x));
    for (const o of [...outs, ...pools]) m.eval.outputs.push({ name: o });
    const xt = input(1, [2, 4, 4], 11);
    const r = await run(await openSession(modelOf(m.eval), { threads: 1 }), { x: xt });
    const xs = Array.from(xt.data as Float32Array);
    const fns = [
      (v: number) => (v > 0 ? v : 0.1 * v),
      (v: number) => Math.min(Math.max(v, 0), 6),
      (v: number) => (v * Math.min(Math.max(v + 3, 0), 6)) / 6,
      (v: number) => 1 / (1 + Math.exp(-v)),
      Math.tanh,
      (v: number) => 2 * v,
    ];
    fns.forEach((f, i) => {
      const y = r[outs[i]!]!.data as Float32Array;
      xs.forEach((v, j) => {
        expect(y[j]).toBeCloseTo(f(v), 5);
      });
    });
    expect(r[outs[6]!]!.dims).toEqual([1, 4, 4, 4]);
    const at = (c: number, i: number, j: number) =>
      i < 0 || j < 0 || i > 3 || j > 3 ? 0 : xs[c * 16 + i * 4 + j]!;
    expect((r[pools[0]!]!.data as Float32Array)[0]).toBeCloseTo(
      Math.max(at(0, 0, 0), at(0, 0, 1), at(0, 1, 0), at(0, 1, 1)),
      6,
    );
    // count_include_pad=True: the corner average divides by 9
    let s = 0;
    for (let i = -1; i <= 1; i++) for (let j = -1; j <= 1; j++) s += at(1, i, j);
    expect((r[pools[1]!]!.data as Float32Array)[16]).toBeCloseTo(s / 9, 5);
    expect(r[pools[2]!]!.dims).toEqual([1, 2, 1, 1]);
  });

  test("bad input names the layer", () => {
    expect(() => sequential("t", [3, 8, 8], [Conv2d(4, 3), Linear(2)])).toThrow(NnError);
    expect(() => sequential("t", [3, 8, 8], [Conv2d(4, 3), Linear(2)])).toThrow(/layer '1'.*flatten/);
    expect(() => sequential("t", [3, 2, 2], [Conv2d(4, 5)])).toThrow(/layer '0'.*too small/);
    expect(() => sequential("t", [3, 8, 8], [Conv2d(4, 3, { groups: 2 })])).toThrow(/groups=2/);
    const b = new NetBuilder("t", [3, 8, 8]);
    b.conv2d(b.input, { name: "c", out: 4, kernel: 3 });
    expect(() => b.conv2d(b.input, { name: "c", out: 4, kernel: 3 })).toThrow(/already exists/);
    expect(() => sequential("t", [3, 8, 8], [ReLU(), Dropout(1)])).toThrow(/dropout probability/);
  });
});
