import { describe, expect, test } from "vitest";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, type Tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { appendOptimizer, OptimizerError, type OptimizerSpec } from "../../src/train/optimizers.js";
import { Rng } from "../../src/util/rng.js";

// ---- a plain JS (float64) transcription of torch.optim's single-tensor update rules, as the reference

type State = Record<string, number[]>;

function torchStep(
  spec: OptimizerSpec,
  p: number[],
  grad: number[],
  st: State,
  lr: number,
  t: number,
): number[] {
  if (spec.kind === "sgd") {
    const { momentum = 0, dampening = 0, nesterov = false, weightDecay = 0 } = spec;
    let d = grad.map((g, i) => g + weightDecay * p[i]!);
    if (momentum !== 0) {
      if (!st.buf)
        st.buf = [...d]; // torch.clone(d_p).detach() on the first step
      else st.buf = st.buf.map((b, i) => momentum * b + (1 - dampening) * d[i]!);
      const buf = st.buf;
      d = nesterov ? d.map((v, i) => v + momentum * buf[i]!) : [...buf];
    }
    return p.map((v, i) => v - lr * d[i]!);
  }
  const [b1, b2] = spec.betas ?? [0.9, 0.999];
  const eps = spec.eps ?? 1e-8;
  const wd = spec.weightDecay ?? (spec.kind === "adamw" ? 1e-2 : 0);
  let param = p;
  let g = grad;
  if (spec.kind === "adamw") param = p.map((v) => v * (1 - lr * wd));
  else if (wd) g = grad.map((v, i) => v + wd * p[i]!);
  st.m ??= p.map(() => 0);
  st.v ??= p.map(() => 0);
  st.m = st.m.map((m, i) => b1 * m + (1 - b1) * g[i]!);
  st.v = st.v.map((v, i) => b2 * v + (1 - b2) * g[i]! * g[i]!);
  const bc1 = 1 - b1 ** t;
  const bc2 = 1 - b2 ** t;
  const stepSize = lr / bc1;
  return param.map((v, i) => v - stepSize * (st.m![i]! / (Math.sqrt(st.v![i]!) / Math.sqrt(bc2) + eps)));
}

async function compare(spec: OptimizerSpec, steps = 5, gradScale = 2) {
  const shapes = [[3, 4], [5]];
  const g = new Graph();
  const params = shapes.map((dims, i) => {
    g.inputs.push(
      { name: `p${i}`, dtype: "float32", shape: dims },
      { name: `g${i}`, dtype: "float32", shape: dims },
    );
    return { name: `p${i}`, grad: `g${i}`, dims };
  });
  g.inputs.push({ name: "lr", dtype: "float32", shape: [] }, { name: "step", dtype: "float32", shape: [] });
  const opt = appendOptimizer(g, spec, params, { lr: "lr", step: "step" });
  for (const v of opt.next.values()) g.outputs.push({ name: v });
  const session = await openSession(modelOf(g), { threads: 1 });

  const rng = new Rng(42);
  const values = new Map<string, Tensor>();
  for (const p of params)
    values.set(
      p.name,
      f32(
        p.dims,
        rng.uniformArray(
          p.dims.reduce((a, b) => a * b),
          -1,
          1,
        ),
      ),
    );
  for (const s of opt.state) values.set(s.name, s.init);
  const ref = params.map((p) => Array.from(values.get(p.name)!.data as Float32Array));
  const refState: State[] = params.map(() => ({}));
  let worst = 0;
  for (let t = 1; t <= steps; t++) {
    const lr = 0.1 / t; // a changing learning rate, as a schedule gives
    const feeds: Record<string, Tensor> = { lr: f32([], [lr]), step: f32([], [t]) };
    for (const [k, v] of values) feeds[k] = v;
    params.forEach((p, i) => {
      const grad = rng.uniformArray(ref[i]!.length, -gradScale, gradScale);
      feeds[p.grad] = f32(p.dims, grad);
      ref[i] = torchStep(spec, ref[i]!, Array.from(grad), refState[i]!, lr, t);
    });
    const out = await run(session, feeds);
    for (const [name, next] of opt.next) values.set(name, out[next]!);
    params.forEach((p, i) => {
      const got = values.get(p.name)!.data as Float32Array;
      // float32 against float64: a few ulps of the parameter
      ref[i]!.forEach((r, j) => {
        worst = Math.max(worst, Math.abs(got[j]! - r) / (1e-6 + 1e-5 * Math.abs(r)));
      });
    });
  }
  return worst;
}

describe("optimizers in the graph match torch.optim's formulas over several steps", () => {
  const cases: [string, OptimizerSpec][] = [
    ["plain SGD", { kind: "sgd" }],
    ["SGD momentum", { kind: "sgd", momentum: 0.9 }],
    [
      "SGD momentum + dampening (first step copies the gradient)",
      { kind: "sgd", momentum: 0.9, dampening: 0.3 },
    ],
    ["SGD Nesterov + weight decay", { kind: "sgd", momentum: 0.8, nesterov: true, weightDecay: 1e-2 }],
    ["Adam", { kind: "adam" }],
    ["Adam + L2 weight decay", { kind: "adam", betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.05 }],
    ["AdamW", { kind: "adamw", weightDecay: 0.1 }],
  ];
  for (const [label, spec] of cases) {
    test(label, async () => {
      expect(await compare(spec, 6)).toBeLessThan(1);
    });
  }

  test("Adam with gradients near eps: eps is added after the bias-corrected square root", async () => {
    // here ε inside the root or before the bias correction would move the update by far more than the tolerance
    expect(await compare({ kind: "adam", eps: 1e-3 }, 4, 1e-3)).toBeLessThan(1);
    expect(await compare({ kind: "adamw", eps: 1e-3, betas: [0.5, 0.6] }, 4, 1e-3)).toBeLessThan(1);
  });

  test("state inputs are named like torch's optimizer state", () => {
    const g = new Graph();
    g.inputs.push({ name: "w", dtype: "float32", shape: [2] }, { name: "dw", dtype: "float32", shape: [2] });
    const adam = appendOptimizer(g, { kind: "adam" }, [{ name: "w", grad: "dw", dims: [2] }], {
      lr: "lr",
      step: "step",
    });
    expect(adam.state.map((s) => s.name)).toEqual(["w.exp_avg", "w.exp_avg_sq"]);
    const g2 = new Graph();
    const sgd = appendOptimizer(g2, { kind: "sgd", momentum: 0.9 }, [{ name: "w", grad: "dw", dims: [2] }], {
      lr: "lr",
      step: "step",
    });
    expect(sgd.state.map((s) => s.name)).toEqual(["w.momentum_buffer"]);
    expect([...sgd.next.keys()]).toEqual(["w.momentum_buffer", "w"]);
  });

  test("invalid hyperparameters are refused as PyTorch refuses them", () => {
    const p = [{ name: "w", grad: "dw", dims: [2] }];
    const io = { lr: "lr", step: "step" };
    expect(() => appendOptimizer(new Graph(), { kind: "sgd", nesterov: true }, p, io)).toThrow(
      OptimizerError,
    );
    expect(() => appendOptimizer(new Graph(), { kind: "sgd", momentum: -1 }, p, io)).toThrow(/momentum/);
    expect(() => appendOptimizer(new Graph(), { kind: "adam", betas: [1, 0.9] }, p, io)).toThrow(/betas/);
  });
});
