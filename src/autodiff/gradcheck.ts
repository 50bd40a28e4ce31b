import { modelOf } from "../onnx/codec.js";
import { Graph } from "../onnx/ir.js";
import { type Tensor, tensor } from "../onnx/tensor.js";
import { openSession, run } from "../runtime/session.js";
import { appendBackward } from "./backward.js";

/** One input of a checked graph. */
export interface CheckInput {
  dims: number[];
  /** Values (row-major); default: standard normal draws. */
  data?: ArrayLike<number>;
  /** "int64" inputs (labels, indices) are fed as given and never differentiated. */
  dtype?: "float" | "int64";
  /** Whether to check this input's gradient (default: every float input). */
  wrt?: boolean;
}

export interface GradCheckSpec {
  /** Inputs by name; the graph declares them with these static dims. */
  inputs: Record<string, CheckInput>;
  /** Append the forward nodes to `g` (inputs already declared) and return the outputs to check. */
  build: (g: Graph) => string | string[];
  /** Element type of float inputs and of the graph's float constants. */
  dtype?: "float32" | "float64";
  /** Finite-difference step (default 1e-6 in float64, 1e-2 in float32). */
  eps?: number;
  /** Random directions per input for the directional check (default 3). */
  directions?: number;
  /** Also compare every element by central differences when an input has at most this many (float64 only). */
  elementwise?: number;
  seed?: number;
  /** ORT graph optimisation level for the check sessions (default "disabled": test the emitted ops as they are). */
  optimization?: "disabled" | "basic" | "extended" | "all";
}

export interface DirectionalCheck {
  input: string;
  /** ⟨∇L, v⟩ from the backward graph. */
  analytic: number;
  /** (L(x + εv) − L(x − εv)) / 2ε. */
  numeric: number;
  /** |analytic − numeric| / max(‖∇L‖·rms(v), |numeric|): the error relative to the typical size of ⟨∇L, v⟩. */
  error: number;
}

export interface GradCheckResult {
  dtype: "float32" | "float64";
  eps: number;
  directional: DirectionalCheck[];
  /** Per input, max over elements of |g − ĝ| / max|g| (only for inputs small enough, float64). */
  elementwise: { input: string; error: number }[];
  /** The largest error of all checks. */
  maxError: number;
  /** Number of backward nodes appended. */
  backwardNodes: number;
  /** Op types of the backward nodes. */
  backwardOps: string[];
}

/**
 * Check the gradients `appendBackward` emits for a small graph against central finite differences, run in ONNX
 * Runtime. The checked scalar is L = Σ_outputs Σ r ⊙ y with fixed random weights r, so every output element
 * matters; L is summed in float64 in JavaScript from the outputs, so ORT's own float32 reduction adds no noise.
 * Shapes of intermediate values are taken from a first run of the forward graph (as shape inference would give).
 */
export async function gradCheck(spec: GradCheckSpec): Promise<GradCheckResult> {
  const dtype = spec.dtype ?? "float64";
  const eps = spec.eps ?? (dtype === "float64" ? 1e-6 : 1e-2);
  const rng = mulberry(spec.seed ?? 1);
  const feeds: Record<string, Tensor> = {};
  const g = new Graph();
  g.name = "gradcheck";
  for (const [name, inp] of Object.entries(spec.inputs)) {
    const n = inp.dims.reduce((a, b) => a * b, 1);
    const isInt = inp.dtype === "int64";
    const values = inp.data ?? Array.from({ length: n }, () => rng.normal());
    feeds[name] = tensor(
      isInt ? "int64" : dtype,
      inp.dims,
      Array.from(values, (v) => (isInt ? Math.round(v) : v)),
    );
    g.inputs.push({ name, dtype: isInt ? "int64" : dtype, shape: inp.dims });
  }
  const outs = [spec.build(g)].flat();
  if (dtype === "float64") retypeConstants(g);
  const opts = { threads: 1, optimization: spec.optimization ?? "disabled" } as const;

  // forward once: the shapes of every value, and of the outputs for the weights r
  g.outputs = g.nodes.flatMap((nd) => nd.outputs.filter(Boolean).map((name) => ({ name })));
  const probe = await run(await openSession(modelOf(g), opts), feeds);
  for (const [name, t] of Object.entries(probe))
    g.valueInfo.set(name, { name, dtype: t.dtype, shape: t.dims });

  const weights = outs.map((o) => {
    const t = probe[o]!;
    return Float64Array.from({ length: t.data.length }, () => rng.normal());
  });
  const terms = outs.map((o, i) => {
    const r = g.constant(`${o}_r`, tensor(probe[o]!.dtype, probe[o]!.dims, weights[i]!));
    const weighted = g.op("Mul", [o, r]);
    g.valueInfo.set(weighted, { name: weighted, dtype, shape: probe[o]!.dims });
    const term = g.op("ReduceSum", [weighted], { keepdims: 0 });
    g.valueInfo.set(term, { name: term, dtype, shape: [] });
    return term;
  });
  const loss = terms.length === 1 ? terms[0]! : g.op("Sum", terms);
  g.valueInfo.set(loss, { name: loss, dtype, shape: [] });
  const wrt = Object.entries(spec.inputs)
    .filter(([, i]) => i.dtype !== "int64" && i.wrt !== false)
    .map(([k]) => k);
  const before = g.nodes.length;
  const grads = appendBackward(g, loss, wrt);
  const backwardOps = g.nodes.slice(before).map((n) => n.opType);
  g.outputs = [...outs, ...wrt.map((w) => grads.get(w)!)].map((name) => ({ name }));
  const session = await openSession(modelOf(g), opts);

  const lossAt = async (f: Record<string, Tensor>): Promise<number> => {
    const r = await run(session, f, outs);
    let s = 0;
    outs.forEach((o, i) => {
      const y = r[o]!.data as Float32Array | Float64Array;
      const w = weights[i]!;
      for (let k = 0; k < y.length; k++) s += y[k]! * w[k]!;
    });
    return s;
  };
  const base = await run(session, feeds);
  const result: GradCheckResult = {
    dtype,
    eps,
    directional: [],
    elementwise: [],
    maxError: 0,
    backwardNodes: g.nodes.length - before,
    backwardOps,
  };
  const make = (data: Float64Array): Float32Array | Float64Array =>
    dtype === "float32" ? Float32Array.from(data) : data;

  for (const w of wrt) {
    const x = feeds[w]!;
    const xd = Float64Array.from(x.data as Float32Array | Float64Array);
    const grad = Float64Array.from(base[grads.get(w)!]!.data as Float32Array | Float64Array);
    const gnorm = Math.sqrt(grad.reduce((a, b) => a + b * b, 0));
    for (let d = 0; d < (spec.directions ?? 3); d++) {
      const v = Float64Array.from(xd, () => rng.normal());
      const plus = make(xd.map((xi, k) => xi + eps * v[k]!));
      const minus = make(xd.map((xi, k) => xi - eps * v[k]!));
      const lp = await lossAt({ ...feeds, [w]: { ...x, data: plus } });
      const lm = await lossAt({ ...feeds, [w]: { ...x, data: minus } });
      // the step actually taken (float32 rounds x ± εv)
      let analytic = 0;
      let vv = 0;
      for (let k = 0; k < xd.length; k++) {
        const step = (plus[k]! - minus[k]!) / (2 * eps);
        analytic += grad[k]! * step;
        vv += step * step;
      }
      const numeric = (lp - lm) / (2 * eps);
      const scale = Math.max(gnorm * Math.sqrt(vv / xd.length), Math.abs(numeric), 1e-12);
      const error = Math.abs(analytic - numeric) / scale;
      result.directional.push({ input: w, analytic, numeric, error });
      result.maxError = Math.max(result.maxError, error);
    }
    if (dtype === "float64" && spec.elementwise && xd.length <= spec.elementwise) {
      let worst = 0;
      const gmax = Math.max(...grad.map(Math.abs), 1e-12);
      for (let k = 0; k < xd.length; k++) {
        const p = Float64Array.from(xd);
        const m = Float64Array.from(xd);
        p[k]! += eps;
        m[k]! -= eps;
        const num =
          ((await lossAt({ ...feeds, [w]: { ...x, data: p } })) -
            (await lossAt({ ...feeds, [w]: { ...x, data: m } }))) /
          (2 * eps);
        worst = Math.max(worst, Math.abs(num - grad[k]!) / gmax);
      }
      result.elementwise.push({ input: w, error: worst });
      result.maxError = Math.max(result.maxError, worst);
    }
  }
  return result;
}

/** Float32 initializers a test built become float64 when the check runs in float64. */
function retypeConstants(g: Graph): void {
  for (const [k, t] of g.initializers) {
    if (t.dtype === "float32")
      g.initializers.set(k, { ...t, dtype: "float64", data: Float64Array.from(t.data as Float32Array) });
  }
}

/** A small seeded generator (mulberry32) with normal draws (Box–Muller). */
export function mulberry(seed: number): { uniform(): number; normal(): number } {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    uniform,
    normal: () => {
      const u = Math.max(uniform(), 1e-12);
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
    },
  };
}
