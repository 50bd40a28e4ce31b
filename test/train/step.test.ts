import { describe, expect, test } from "vitest";
import {
  BatchNorm2d,
  Conv2d,
  Flatten,
  Linear,
  named,
  ReLU,
  sequential,
  stateDict,
  zooModel,
} from "../../src/nn/index.js";
import type { NetModel } from "../../src/nn/model.js";
import { attrInt } from "../../src/onnx/ir.js";
import { f32, i64, type Tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import {
  buildGradientGraph,
  buildTrainingStep,
  EvalRunner,
  type GraphLoss,
  StepError,
  TrainingRunner,
} from "../../src/train/step.js";
import { Rng } from "../../src/util/rng.js";

const tiny = (seed = 3): NetModel =>
  sequential(
    "tiny",
    [2, 6, 6],
    [
      named("bn0", BatchNorm2d()),
      named("conv", Conv2d(4, 3, { padding: 1 })),
      named("bn", BatchNorm2d()),
      ReLU(),
      Flatten(),
      named("fc", Linear(3)),
    ],
    { seed },
  );

/** A learnable batch: the class decides the sign pattern of the image, plus noise. */
function batch(n: number, seed: number): { x: Tensor; y: Tensor } {
  const rng = new Rng(seed);
  const xs = new Float32Array(n * 72);
  const ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = rng.int(3);
    ys.push(c);
    for (let j = 0; j < 72; j++) xs[i * 72 + j] = (j % 3 === c ? 1.5 : -0.5) + 0.5 * rng.normal();
  }
  return { x: f32([n, 2, 6, 6], xs), y: i64([n], ys) };
}

describe("training step", () => {
  test("one ONNX graph: inputs are parameters, optimizer state, buffers, batch, lr, step", () => {
    const s = buildTrainingStep(tiny(), { optimizer: { kind: "sgd", momentum: 0.9 } });
    const inputs = s.model.graph.inputs.map((v) => v.name);
    expect(inputs).toEqual(
      expect.arrayContaining([
        "x",
        "labels",
        "lr",
        "step",
        "conv.weight",
        "conv.weight.momentum_buffer",
        "bn.running_var",
      ]),
    );
    const outputs = s.model.graph.outputs.map((v) => v.name);
    expect(outputs.slice(0, 2)).toEqual([s.loss, s.correct]);
    expect(outputs).toHaveLength(2 + s.carried.length);
    expect(s.carried.filter((c) => c.kind === "param").map((c) => c.name)).toEqual(tiny().params);
    expect(s.model.graph.initializers.has("conv.weight")).toBe(false);
  });

  test("training decreases the loss and raises accuracy on a learnable batch", async () => {
    const { x, y } = batch(48, 1);
    const runner = await TrainingRunner.create(
      buildTrainingStep(tiny(), { optimizer: { kind: "sgd", momentum: 0.9 } }),
      { threads: 1 },
    );
    const first = await runner.run(x, y, 0.05);
    let last = first;
    for (let i = 0; i < 30; i++) last = await runner.run(x, y, 0.05);
    expect(first.loss).toBeGreaterThan(0.7);
    expect(last.loss).toBeLessThan(first.loss * 0.3);
    expect(last.correct).toBeGreaterThan(first.correct!);
    expect(last.correct).toBe(48);
    expect(runner.steps).toBe(31);
    await runner.release();
  });

  test("Adam and AdamW steps train too", async () => {
    for (const kind of ["adam", "adamw"] as const) {
      const { x, y } = batch(32, 2);
      const runner = await TrainingRunner.create(buildTrainingStep(tiny(), { optimizer: { kind } }), {
        threads: 1,
      });
      const first = await runner.run(x, y, 0.01);
      let last = first;
      for (let i = 0; i < 20; i++) last = await runner.run(x, y, 0.01);
      expect(last.loss).toBeLessThan(first.loss * 0.5);
      await runner.release();
    }
  });

  test("parameter rules: a positive one is mirrored at zero and held at its least value; Adam moves a relative one by lr·size", async () => {
    const { x, y } = batch(16, 4);
    const stepOnce = async (rules?: NetModel["rules"]) => {
      const net = tiny();
      net.rules = rules;
      const runner = await TrainingRunner.create(buildTrainingStep(net, { optimizer: { kind: "adam" } }), {
        threads: 1,
      });
      await runner.run(x, y, 0.5);
      const w = runner.weights();
      const v = (k: string) => Float32Array.from(w.get(k)!.data as Float32Array);
      await runner.release();
      return { fc: v("fc.weight"), bias: v("fc.bias") };
    };
    const free = await stepOnce();
    const ruled = await stepOnce(
      new Map([
        ["fc.weight", { positive: 0.45 }],
        ["fc.bias", { relativeTo: f32([3], [1, 0.01, 1e-4]) }],
      ]),
    );
    // lr 0.5 pushes many weights below zero: each comes out as max(|w|, 0.45)
    expect(free.fc.some((v) => v < 0) && free.fc.some((v) => Math.abs(v) < 0.45)).toBe(true);
    expect(ruled.fc).toEqual(free.fc.map((v) => Math.max(Math.abs(v), Math.fround(0.45))));
    // Adam's first step is lr·sign(grad) (bias-corrected, up to ε): here times the size of each element
    const start = tiny().train.initializers.get("fc.bias")!.data as Float32Array;
    [1, 0.01, 1e-4].forEach((r, i) => {
      expect(Math.abs(ruled.bias[i]! - start[i]!) / (0.5 * r)).toBeCloseTo(1, 4);
    });
  });

  test("regression losses: MSE and BCE-with-logits steps on float targets train", async () => {
    for (const kind of ["mse", "bce-with-logits"] as const) {
      const { x, y } = batch(24, 8);
      const target = f32(
        [24, 3],
        Array.from({ length: 72 }, (_, i) =>
          Number((y.data as BigInt64Array)[Math.floor(i / 3)]) === i % 3 ? 1 : 0,
        ),
      );
      const step = buildTrainingStep(tiny(), { loss: { kind }, optimizer: { kind: "adam" } });
      expect(step.model.graph.inputs.find((v) => v.name === "labels")!.dtype).toBe("float32");
      const runner = await TrainingRunner.create(step, { threads: 1 });
      const first = await runner.run(x, target, 0.01);
      let last = first;
      for (let i = 0; i < 25; i++) last = await runner.run(x, target, 0.01);
      expect(last.loss, kind).toBeLessThan(first.loss * 0.6);
      if (kind === "bce-with-logits") expect(last.correct).toBeGreaterThan(first.correct!);
      await runner.release();
    }
  });

  test("a graph loss built by its owner gives the same steps as the built-in loss it spells out", async () => {
    const { x, y } = batch(16, 9);
    const target = f32(
      [16, 3],
      Array.from({ length: 48 }, (_, i) =>
        Number((y.data as BigInt64Array)[Math.floor(i / 3)]) === i % 3 ? 1 : 0,
      ),
    );
    const graphMse: GraphLoss = {
      kind: "graph",
      name: "my-mse",
      targetShape: [3],
      build: (g, out, t) => {
        const d = g.op("Sub", [out, t]);
        return g.op("ReduceMean", [g.op("Mul", [d, d])], { keepdims: 0 });
      },
    };
    const losses: number[][] = [];
    for (const loss of [{ kind: "mse" } as const, graphMse]) {
      const runner = await TrainingRunner.create(
        buildTrainingStep(tiny(), { loss, optimizer: { kind: "adam" } }),
        {
          threads: 1,
        },
      );
      const seen: number[] = [];
      for (let i = 0; i < 5; i++) seen.push((await runner.run(x, target, 0.01)).loss);
      losses.push(seen);
      if (loss.kind === "graph")
        await expect(runner.run(x, f32([16, 4], new Float32Array(64)), 0.01)).rejects.toThrow(/labels/);
      await runner.release();
    }
    for (let i = 0; i < 5; i++) expect(losses[1]![i]).toBeCloseTo(losses[0]![i]!, 6);
    expect(losses[0]![4]).toBeLessThan(losses[0]![0]!);
  });

  test("parameters and momentum carry between steps exactly as SGD on the graph's own gradients", async () => {
    const net = tiny();
    const b1 = batch(8, 5);
    const b2 = batch(8, 6);
    const lr = [0.1, 0.05];
    const runner = await TrainingRunner.create(
      buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } }),
      { threads: 1 },
    );
    await runner.run(b1.x, b1.y, lr[0]!);
    await runner.run(b2.x, b2.y, lr[1]!);
    // the same two steps by hand: gradients from the gradient graph, torch's momentum rule in JS
    const gg = buildGradientGraph(net);
    const session = await openSession(gg.model, { threads: 1 });
    const values = new Map(stateDict(net));
    const buf = new Map<string, Float32Array>();
    for (const [k, b] of [b1, b2].entries()) {
      const feeds: Record<string, Tensor> = { x: b.x, labels: b.y };
      for (const [n, t] of values) feeds[n] = t;
      const out = await run(session, feeds);
      for (const p of net.params) {
        const g = out[gg.grads.get(p)!]!.data as Float32Array;
        const w = values.get(p)!.data as Float32Array;
        const m = buf.get(p) ?? Float32Array.from(g);
        if (k > 0) for (let i = 0; i < m.length; i++) m[i] = 0.9 * m[i]! + g[i]!;
        buf.set(p, m);
        values.set(
          p,
          f32(
            values.get(p)!.dims,
            w.map((v, i) => v - lr[k]! * m[i]!),
          ),
        );
      }
      for (const bname of net.buffers) values.set(bname, out[net.updates.get(bname)!]!);
    }
    const got = runner.values();
    for (const p of net.params) {
      const a = got.get(p)!.data as Float32Array;
      const e = values.get(p)!.data as Float32Array;
      for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(e[i]!, 5);
    }
    expect(Number((got.get("bn.num_batches_tracked")!.data as BigInt64Array)[0])).toBe(2);
    // BN in front of everything: its running mean after two steps is 0.9·(0.1·m1) + 0.1·m2 of the raw inputs
    const chMean = (x: Tensor, c: number) => {
      const d = x.data as Float32Array;
      let s = 0;
      for (let n = 0; n < 8; n++) for (let i = 0; i < 36; i++) s += d[(n * 2 + c) * 36 + i]!;
      return s / (8 * 36);
    };
    const rm = got.get("bn0.running_mean")!.data as Float32Array;
    for (const c of [0, 1]) expect(rm[c]).toBeCloseTo(0.9 * 0.1 * chMean(b1.x, c) + 0.1 * chMean(b2.x, c), 5);
    expect(Array.from(got.get("conv.weight.momentum_buffer")!.data as Float32Array)).toEqual(
      Array.from(buf.get("conv.weight")!).map((v) => expect.closeTo(v, 5)),
    );
    await runner.release();
    await session.release();
  });

  test("a step leaves the tensors it was fed untouched (ORT writes only to its outputs)", async () => {
    const runner = await TrainingRunner.create(
      buildTrainingStep(tiny(), { optimizer: { kind: "sgd", momentum: 0.9 } }),
      { threads: 1 },
    );
    const { x, y } = batch(8, 4);
    await runner.run(x, y, 0.1);
    const fed = runner.values();
    const bytes = (t: Tensor) => {
      const d = t.data as Float32Array | BigInt64Array;
      return Buffer.from(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    };
    const copies = new Map([...fed].map(([k, t]) => [k, Buffer.from(bytes(t))]));
    await runner.run(x, y, 0.1);
    for (const [k, t] of fed) expect(bytes(t).equals(copies.get(k)!), k).toBe(true);
    expect(runner.values().get("bn.running_mean")!.data).not.toBe(fed.get("bn.running_mean")!.data);
    await runner.release();
  });

  test("same seed, same batches → bit-identical weights", async () => {
    const train = async () => {
      const r = await TrainingRunner.create(
        buildTrainingStep(zooModel("mobilenet-tiny", { seed: 7 }), { optimizer: { kind: "adamw" } }),
        { threads: 1 },
      );
      const rng = new Rng(3);
      for (let s = 0; s < 2; s++) {
        const x = f32([4, 3, 32, 32], rng.uniformArray(4 * 3 * 32 * 32, -1, 1));
        await r.run(x, i64([4], [0, 1, 2, 3]), 0.01);
      }
      const v = r.values("param");
      await r.release();
      return v;
    };
    const [a, b] = [await train(), await train()];
    for (const [k, t] of a)
      expect(Buffer.from(t.data as Float32Array).equals(Buffer.from(b.get(k)!.data as Float32Array)), k).toBe(
        true,
      );
  });

  test("the eval runner uses the trained weights and BN's running statistics", async () => {
    const net = tiny();
    const { x, y } = batch(30, 9);
    const runner = await TrainingRunner.create(
      buildTrainingStep(net, { optimizer: { kind: "sgd", momentum: 0.9 } }),
      { threads: 1 },
    );
    const ev = await EvalRunner.create(net, { threads: 1 });
    const before = await ev.run(x, { labels: y, weights: runner.weights() });
    for (let i = 0; i < 40; i++) await runner.run(x, y, 0.05);
    const after = await ev.run(x, { labels: y, weights: runner.weights() });
    expect(after.correct).toBeGreaterThan(before.correct!);
    expect(after.correct).toBeGreaterThanOrEqual(27);
    // the initial weights when none are given
    const init = await ev.run(x);
    expect(Array.from(init.logits.data as Float32Array)).toEqual(
      Array.from(before.logits.data as Float32Array),
    );
    expect(
      net.eval.nodes
        .filter((n) => n.opType === "BatchNormalization")
        .every((n) => attrInt(n, "training_mode", 0) === 0),
    ).toBe(true);
    await runner.release();
    await ev.release();
  });

  test("a batch of the wrong shape or label type is refused naming the input", async () => {
    const runner = await TrainingRunner.create(buildTrainingStep(tiny(), { optimizer: { kind: "sgd" } }), {
      threads: 1,
    });
    const { x, y } = batch(4, 1);
    await expect(runner.run(f32([4, 72], x.data as Float32Array), y, 0.1)).rejects.toThrow(StepError);
    await expect(runner.run(f32([4, 72], x.data as Float32Array), y, 0.1)).rejects.toThrow(
      /input 'x' must be float32 \[batch, 2,6,6\]/,
    );
    await expect(runner.run(x, f32([4], [0, 1, 2, 0]), 0.1)).rejects.toThrow(/'labels' must be int64/);
    await expect(runner.run(x, i64([3], [0, 1, 2]), 0.1)).rejects.toThrow(/4 rows/);
    await runner.release();
  });
});
