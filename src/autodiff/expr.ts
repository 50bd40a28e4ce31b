import { modelOf } from "../onnx/codec.js";
import { type Dim, Graph } from "../onnx/ir.js";
import { f32, type Tensor } from "../onnx/tensor.js";
import { openSession, run } from "../runtime/session.js";
import { appendBackward } from "./backward.js";

/**
 * A small eager-looking tensor API over ONNX graphs, for learning and quick experiments:
 *
 * ```ts
 * const w = param(5.0);
 * const loss = w.sub(2).pow(2);
 * const [g] = await grad(loss, [w]);   // builds the ONNX graph, appends its backward, runs it in ORT
 * w.update(g, 0.1);                     // w -= 0.1 * grad, in float32
 * ```
 * Expressions only record what to compute; `grad` (or `evaluate`) turns them into one ONNX graph and runs it.
 * Values are float32.
 */
export class Expr {
  /** @internal */
  constructor(
    readonly op: string,
    readonly args: Expr[],
    readonly dims: number[],
    readonly attrs: Record<string, number | number[]> = {},
  ) {}

  add(o: Operand): Expr {
    return binary("Add", this, lift(o));
  }
  sub(o: Operand): Expr {
    return binary("Sub", this, lift(o));
  }
  mul(o: Operand): Expr {
    return binary("Mul", this, lift(o));
  }
  div(o: Operand): Expr {
    return binary("Div", this, lift(o));
  }
  /** Raise to a constant power. */
  pow(p: number): Expr {
    return new Expr("Pow", [this, tensor(p)], this.dims);
  }
  neg(): Expr {
    return new Expr("Neg", [this], this.dims);
  }
  exp(): Expr {
    return new Expr("Exp", [this], this.dims);
  }
  log(): Expr {
    return new Expr("Log", [this], this.dims);
  }
  relu(): Expr {
    return new Expr("Relu", [this], this.dims);
  }
  sigmoid(): Expr {
    return new Expr("Sigmoid", [this], this.dims);
  }
  tanh(): Expr {
    return new Expr("Tanh", [this], this.dims);
  }
  /** Matrix product with numpy semantics (2-D here: [m, k] · [k, n]). */
  matmul(o: Expr): Expr {
    const [m, k] = this.dims;
    const [k2, n] = o.dims;
    if (this.dims.length !== 2 || o.dims.length !== 2 || k !== k2) {
      throw new RangeError(`matmul needs [m, k]·[k, n], got [${this.dims}]·[${o.dims}]`);
    }
    return new Expr("MatMul", [this, o], [m!, n!]);
  }
  /** Sum of all elements (a scalar). */
  sum(): Expr {
    return new Expr("ReduceSum", [this], [], { keepdims: 0 });
  }
  /** Mean of all elements (a scalar). */
  mean(): Expr {
    return new Expr("ReduceMean", [this], [], { keepdims: 0 });
  }
}

/** A leaf holding values: a constant (`tensor`) or a trainable parameter (`param`). */
export class Leaf extends Expr {
  /** Identifies the leaf in cached compiled graphs. */
  readonly id = nextLeafId++;

  /** @internal */
  constructor(
    public value: Float32Array,
    dims: number[],
    readonly trainable: boolean,
    readonly name?: string,
  ) {
    super(trainable ? "Param" : "Const", [], dims);
  }

  /** The values as plain numbers (float32 values widened exactly). */
  toArray(): number[] {
    return Array.from(this.value);
  }

  /** The single value of a scalar. */
  item(): number {
    if (this.value.length !== 1)
      throw new RangeError(`item() needs one element, this has ${this.value.length}`);
    return this.value[0]!;
  }

  /** Gradient descent in place: value ← value − lr·grad, in float32 arithmetic like PyTorch's `w -= lr * w.grad`. */
  update(gradient: Tensor, lr: number): void {
    const g = gradient.data as Float32Array;
    if (g.length !== this.value.length)
      throw new RangeError(`gradient has ${g.length} values, parameter ${this.value.length}`);
    const rate = Math.fround(lr);
    for (let i = 0; i < g.length; i++)
      this.value[i] = Math.fround(this.value[i]! - Math.fround(rate * g[i]!));
  }
}

let nextLeafId = 0;

export type Operand = Expr | number;

/** A constant: a number, or values with dims (row-major). */
export function tensor(values: number | ArrayLike<number>, dims?: number[]): Leaf {
  const v = typeof values === "number" ? Float32Array.of(values) : Float32Array.from(values);
  return new Leaf(v, dims ?? (typeof values === "number" ? [] : [v.length]), false);
}

/** A trainable parameter: like `tensor`, and `grad` can differentiate with respect to it. */
export function param(values: number | ArrayLike<number>, dims?: number[], name?: string): Leaf {
  const t = tensor(values, dims);
  return new Leaf(t.value, t.dims, true, name);
}

function lift(o: Operand): Expr {
  return typeof o === "number" ? tensor(o) : o;
}

function binary(op: string, a: Expr, b: Expr): Expr {
  const rank = Math.max(a.dims.length, b.dims.length);
  const pa = [...new Array(rank - a.dims.length).fill(1), ...a.dims];
  const pb = [...new Array(rank - b.dims.length).fill(1), ...b.dims];
  const dims = pa.map((d, i) => {
    const e = pb[i]!;
    if (d !== e && d !== 1 && e !== 1)
      throw new RangeError(`${op}: shapes [${a.dims}] and [${b.dims}] do not broadcast`);
    return d === 1 ? e : d;
  });
  return new Expr(op, [a, b], dims);
}

/** The ONNX graph of an expression: parameters become graph inputs, constants initializers. */
export function toGraph(out: Expr): { graph: Graph; output: string; params: Map<Leaf, string> } {
  const g = new Graph();
  g.name = "expr";
  const names = new Map<Expr, string>();
  const params = new Map<Leaf, string>();
  const visit = (e: Expr): string => {
    const known = names.get(e);
    if (known) return known;
    let name: string;
    if (e instanceof Leaf) {
      if (e.trainable) {
        name = g.uniqueName(e.name ?? "w");
        g.inputs.push({ name, dtype: "float32", shape: e.dims as Dim[] });
        params.set(e, name);
      } else name = g.constant("c", f32(e.dims, e.value));
    } else {
      name = g.op(e.op, e.args.map(visit), e.attrs);
      g.valueInfo.set(name, { name, dtype: "float32", shape: e.dims });
    }
    names.set(e, name);
    return name;
  };
  const output = visit(out);
  return { graph: g, output, params };
}

type Compiled = {
  run: (feeds: Record<string, Tensor>) => Promise<Record<string, Tensor>>;
  params: Map<Leaf, string>;
  output: string;
  grads: string[];
};
const compiled = new WeakMap<Expr, Map<string, Promise<Compiled>>>();

async function compile(loss: Expr, wrt: Leaf[]): Promise<Compiled> {
  const { graph, output, params } = toGraph(loss);
  const names = wrt.map((w) => {
    const n = params.get(w);
    if (!n) throw new RangeError("grad(): a parameter asked for is not part of the expression");
    return n;
  });
  const gmap = appendBackward(graph, output, names);
  const grads = names.map((n) => gmap.get(n)!);
  graph.outputs = [output, ...grads].map((name) => ({ name }));
  const session = await openSession(modelOf(graph), { threads: 1 });
  return { run: (feeds) => run(session, feeds), params, output, grads };
}

function feedsOf(c: Compiled): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const [leaf, name] of c.params) feeds[name] = f32(leaf.dims, leaf.value);
  return feeds;
}

/**
 * Gradients of a scalar expression with respect to parameters, computed by one ONNX Runtime run of the
 * expression's graph with its backward appended. The graph and session are built once per (loss, params) and
 * reused, so calling `grad` in a loop after `update` only feeds the new values.
 */
export async function grad(loss: Expr, wrt: Leaf[]): Promise<Tensor[]> {
  return (await valueAndGrad(loss, wrt)).grads;
}

/** The loss value and its gradients in one run. */
export async function valueAndGrad(loss: Expr, wrt: Leaf[]): Promise<{ value: number; grads: Tensor[] }> {
  if (loss.dims.length !== 0)
    throw new RangeError(`grad() needs a scalar loss, got shape [${loss.dims}]; use .sum() or .mean()`);
  const byParams = compiled.get(loss) ?? new Map<string, Promise<Compiled>>();
  compiled.set(loss, byParams);
  const key = wrt.map((w) => w.id).join(",");
  const c = byParams.get(key) ?? compile(loss, wrt);
  byParams.set(key, c);
  const cc = await c;
  const out = await cc.run(feedsOf(cc));
  return { value: (out[cc.output]!.data as Float32Array)[0]!, grads: cc.grads.map((n) => out[n]!) };
}

/** Evaluate an expression (no gradients). */
export async function evaluate(e: Expr): Promise<Tensor> {
  const { graph, output, params } = toGraph(e);
  graph.outputs = [{ name: output }];
  const session = await openSession(modelOf(graph), { threads: 1 });
  const feeds: Record<string, Tensor> = {};
  for (const [leaf, name] of params) feeds[name] = f32(leaf.dims, leaf.value);
  return (await run(session, feeds))[output]!;
}

/** A float the way Python prints it: integers keep a ".0" (6 → "6.0"), others print in full (4.400000095367432). */
export function formatFloat(x: number): string {
  return Number.isInteger(x) && Math.abs(x) < 1e16 ? x.toFixed(1) : String(x);
}
