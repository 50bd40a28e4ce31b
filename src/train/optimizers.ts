import type { Graph } from "../onnx/ir.js";
import { f32, numel, type Tensor } from "../onnx/tensor.js";

/** Hyperparameters as in torch.optim (same names, same defaults). The learning rate is a graph input. */
export type OptimizerSpec =
  | { kind: "sgd"; momentum?: number; dampening?: number; nesterov?: boolean; weightDecay?: number }
  | { kind: "adam" | "adamw"; betas?: [number, number]; eps?: number; weightDecay?: number };

export interface OptimizerParam {
  /** The parameter's value name (a graph input of the training step). */
  name: string;
  /** The value holding its gradient. */
  grad: string;
  dims: number[];
  /** Adam/AdamW: multiply the step elementwise by this (broadcast to dims): the parameter moves relative to it. */
  relativeTo?: Tensor;
}

export interface OptimizerState {
  /** Graph input name, `<param>.<torch state key>` (momentum_buffer, exp_avg, exp_avg_sq). */
  name: string;
  param: string;
  /** Value before the first step (zeros). */
  init: Tensor;
}

export interface OptimizerGraph {
  state: OptimizerState[];
  /** Parameter or state name → the value holding it after this step. */
  next: Map<string, string>;
}

export class OptimizerError extends Error {
  override name = "OptimizerError";
}

/**
 * Append one optimizer update to `g`, following torch.optim's single-tensor formulas:
 * - SGD: d = g + wd·p; b = d at step 1, else μ·b + (1−dampening)·d; d = d + μ·b (Nesterov) or b; p ← p − lr·d.
 * - Adam: g += wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε).
 * - AdamW: p ← p·(1 − lr·wd) first, then Adam without the gradient's weight decay.
 * `lr` and `step` (t, counted from 1) are float scalar values of the graph. State tensors become graph inputs.
 */
export function appendOptimizer(
  g: Graph,
  spec: OptimizerSpec,
  params: OptimizerParam[],
  io: { lr: string; step: string },
): OptimizerGraph {
  const out: OptimizerGraph = { state: [], next: new Map() };
  const consts = new Map<string, string>();
  const k = (base: string, v: number): string => {
    let c = consts.get(base);
    if (!c) {
      c = g.constant(`opt.${base}`, f32([], [v]));
      consts.set(base, c);
    }
    return c;
  };
  const stateInput = (p: OptimizerParam, key: string): string => {
    const name = `${p.name}.${key}`;
    if (g.uniqueName(name) !== name)
      throw new OptimizerError(`optimizer state '${name}' collides with a value of the graph`);
    g.inputs.push({ name, dtype: "float32", shape: [...p.dims] });
    out.state.push({ name, param: p.name, init: f32(p.dims, new Float32Array(numel(p.dims))) });
    return name;
  };
  const finish = (name: string, value: string): void => {
    const o = g.uniqueName(`${name}.next`);
    g.op("Identity", [value], {}, { output: o });
    out.next.set(name, o);
  };
  const mul = (a: string, b: string): string => g.op("Mul", [a, b]);
  const add = (a: string, b: string): string => g.op("Add", [a, b]);
  const sub = (a: string, b: string): string => g.op("Sub", [a, b]);

  if (spec.kind === "sgd") {
    const { momentum = 0, dampening = 0, nesterov = false, weightDecay = 0 } = spec;
    check(momentum >= 0, `momentum must be ≥ 0, got ${momentum}`);
    check(weightDecay >= 0, `weightDecay must be ≥ 0, got ${weightDecay}`);
    check(
      !nesterov || (momentum > 0 && dampening === 0),
      "Nesterov momentum requires momentum > 0 and dampening 0",
    );
    const wd = weightDecay ? k("weight_decay", weightDecay) : "";
    const mu = momentum ? k("momentum", momentum) : "";
    // (1 − dampening), except on the first step where the buffer is a copy of the gradient
    let damp = "";
    if (momentum && dampening) {
      const first = g.op("Equal", [io.step, k("one", 1)]);
      damp = g.op("Where", [first, k("one", 1), k("one_minus_dampening", 1 - dampening)]);
    }
    for (const p of params) {
      let d = p.grad;
      if (wd) d = add(d, mul(p.name, wd));
      if (mu) {
        const buf = stateInput(p, "momentum_buffer");
        const b = add(mul(buf, mu), damp ? mul(d, damp) : d);
        finish(buf, b);
        d = nesterov ? add(d, mul(b, mu)) : b;
      }
      finish(p.name, sub(p.name, mul(d, io.lr)));
    }
    return out;
  }

  const [beta1, beta2] = spec.betas ?? [0.9, 0.999];
  const eps = spec.eps ?? 1e-8;
  const weightDecay = spec.weightDecay ?? (spec.kind === "adamw" ? 1e-2 : 0);
  check(
    beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
    `betas must be in [0, 1), got [${beta1}, ${beta2}]`,
  );
  check(eps >= 0, `eps must be ≥ 0, got ${eps}`);
  check(weightDecay >= 0, `weightDecay must be ≥ 0, got ${weightDecay}`);
  const one = k("one", 1);
  const b1 = k("beta1", beta1);
  const b2 = k("beta2", beta2);
  const c1 = k("one_minus_beta1", 1 - beta1);
  const c2 = k("one_minus_beta2", 1 - beta2);
  const epsC = k("eps", eps);
  // step size lr / (1 − β1^t) and √(1 − β2^t), computed once on scalars
  const stepSize = g.op("Div", [io.lr, sub(one, g.op("Pow", [b1, io.step]))]);
  const bc2Sqrt = g.op("Sqrt", [sub(one, g.op("Pow", [b2, io.step]))]);
  const decay =
    weightDecay && spec.kind === "adamw" ? sub(one, mul(io.lr, k("weight_decay", weightDecay))) : "";
  const wd = weightDecay && spec.kind === "adam" ? k("weight_decay", weightDecay) : "";
  for (const p of params) {
    const grad = wd ? add(p.grad, mul(p.name, wd)) : p.grad;
    const param = decay ? mul(p.name, decay) : p.name;
    const m = stateInput(p, "exp_avg");
    const v = stateInput(p, "exp_avg_sq");
    const m2 = add(mul(m, b1), mul(grad, c1));
    const v2 = add(mul(v, b2), mul(mul(grad, grad), c2));
    finish(m, m2);
    finish(v, v2);
    const denom = add(g.op("Div", [g.op("Sqrt", [v2]), bc2Sqrt]), epsC);
    let step = mul(g.op("Div", [m2, denom]), stepSize);
    if (p.relativeTo) step = mul(step, g.constant(g.uniqueName(`opt.${p.name}.relative_to`), p.relativeTo));
    finish(p.name, sub(param, step));
  }
  return out;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new OptimizerError(message);
}
