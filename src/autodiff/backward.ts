import { isFloat } from "../onnx/dtype.js";
import { type Graph, topologicalOrder } from "../onnx/ir.js";
import { BOOL_RESULT, INT64_RESULT } from "../onnx/op-families.js";
import { inferShapes } from "../onnx/shapes.js";
import { tensor } from "../onnx/tensor.js";
import { GradContext } from "./context.js";
import { AutodiffError } from "./errors.js";
import { gradientRule, hasGradientRule } from "./registry.js";
import { StaticInfo } from "./shapes.js";

export interface BackwardOptions {
  /**
   * The gradient to seed the loss with (a value name of the loss's shape and type). Default: ones of the loss's
   * shape, i.e. plain d(loss)/dw.
   */
  seed?: string;
  /**
   * What to do when a `wrt` value does not influence the loss: "zeros" (default) returns a zeros tensor of its
   * shape, so optimizers can treat every parameter alike; "error" raises an AutodiffError naming the value.
   */
  unreached?: "zeros" | "error";
  /** Run shape inference on `g` first so rules can use static shapes (default true). */
  inferShapes?: boolean;
}

/** Ops whose outputs never carry a gradient (shapes, comparisons, indices, random draws). */
const NON_DIFFERENTIABLE = new Set([
  ...INT64_RESULT,
  ...BOOL_RESULT,
  "Sign",
  "Floor",
  "Ceil",
  "Round",
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Bernoulli",
  "Multinomial",
  "ConstantOfShape",
  "Constant",
  "EyeLike",
  "OneHot",
  "Range",
]);

/** Whether an op's outputs never carry a gradient, so training needs no rule for it (Shape, Constant, ...). */
export function stopsGradient(opType: string, domain = ""): boolean {
  return domain === "" && NON_DIFFERENTIABLE.has(opType);
}

/**
 * Append to `g` the nodes computing d(loss)/d(w) for every w in `wrt` (initializers or graph inputs) and return
 * the map w → name of its gradient value.
 *
 * The walk visits, in reverse topological order, only nodes that both depend on some `wrt` and reach the loss;
 * gradients of values used several times are summed with one Sum node; inputs that are integers, shapes or
 * indices get none. A node on such a path whose op has no gradient rule raises an AutodiffError naming it.
 * Static shapes are read from `g.valueInfo` (run shape inference first); rules fall back to run-time Shape ops
 * where they can. Emitted nodes use ai.onnx opset 13–17 signatures.
 */
export function appendBackward(
  g: Graph,
  loss: string,
  wrt: string[],
  opts: BackwardOptions = {},
): Map<string, string> {
  if (opts.inferShapes !== false) {
    try {
      inferShapes(g);
    } catch {
      // shapes stay as far as the graph already knows them; a rule that needs one names the value it lacks
    }
  }
  const order = topologicalOrder(g);
  const info = new StaticInfo(g);
  const known = new Set([
    ...g.inputs.map((v) => v.name),
    ...g.initializers.keys(),
    ...g.nodes.flatMap((n) => n.outputs),
  ]);
  for (const w of wrt)
    if (!known.has(w)) throw new AutodiffError(`'${w}' is not a value of the graph`, { value: w });
  if (!known.has(loss))
    throw new AutodiffError(`the loss '${loss}' is not a value of the graph`, { value: loss });

  const differentiable = (v: string) => {
    const d = info.dtype(v);
    return d === undefined || isFloat(d);
  };

  // values that depend on some wrt (through differentiable paths)
  const depends = new Set(wrt.filter(differentiable));
  for (const n of order) {
    if (NON_DIFFERENTIABLE.has(n.opType) && n.domain === "" && !hasGradientRule(n.opType)) continue;
    if (n.inputs.some((i) => i && depends.has(i)))
      for (const o of n.outputs) if (o && differentiable(o)) depends.add(o);
  }
  // values the loss depends on
  const reaches = new Set([loss]);
  const producer = g.producers();
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k]!;
    if (n.outputs.some((o) => o && reaches.has(o))) for (const i of n.inputs) if (i) reaches.add(i);
  }

  const contributions = new Map<string, string[]>();
  const addGrad = (v: string, grad: string) => {
    const list = contributions.get(v);
    if (list) list.push(grad);
    else contributions.set(v, [grad]);
  };
  const gradOf = (v: string): string | undefined => {
    const list = contributions.get(v);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const s = g.op("Sum", list, {}, { name: `${v}_grad_sum` });
      const d = info.dtype(v);
      if (d) info.note(s, d);
      contributions.set(v, [s]);
    }
    return contributions.get(v)![0];
  };

  if (depends.has(loss)) {
    const seed = opts.seed ?? seedOnes(g, loss, info);
    if (!info.dtype(seed)) info.note(seed, info.dtype(loss) ?? "float32");
    addGrad(loss, seed);
  }

  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k]!;
    if (!n.outputs.some((o) => o && reaches.has(o) && depends.has(o))) continue;
    const wanted = n.inputs.map((i) => !!i && depends.has(i) && differentiable(i));
    if (!wanted.some(Boolean)) continue;
    const outGrads = n.outputs.map((o) => (o && depends.has(o) ? gradOf(o) : undefined));
    if (outGrads.every((d) => d === undefined)) continue;
    const rule = gradientRule(n.opType, n.domain);
    if (!rule) {
      throw new AutodiffError(
        `qat has no gradient rule for op type '${n.domain ? `${n.domain}::` : ""}${n.opType}', which lies between ` +
          "a trained value and the loss; freeze the values before it or replace the op",
        { node: n.name, opType: n.opType },
      );
    }
    const grads = rule(new GradContext(g, n, info, outGrads, wanted));
    n.inputs.forEach((i, idx) => {
      const gi = grads[idx];
      if (wanted[idx] && gi) addGrad(i, gi);
    });
  }

  const result = new Map<string, string>();
  const forward = new Set([...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  for (const w of wrt) {
    let grad = gradOf(w);
    if (!grad) {
      if (opts.unreached === "error") {
        throw new AutodiffError(`'${w}' does not influence the loss '${loss}'`, { value: w });
      }
      grad = zerosLike(g, w, info);
    }
    // a gradient that is a forward value or a constant gets its own name, so it can be a graph output
    if (forward.has(grad) || producer.has(grad) || result.has(w))
      grad = g.op("Identity", [grad], {}, { name: `${w}_grad` });
    result.set(w, grad);
  }
  return result;
}

function seedOnes(g: Graph, loss: string, info: StaticInfo): string {
  const dtype = info.dtype(loss) ?? "float32";
  const s = info.shape(loss);
  if (s?.every((d) => typeof d === "number")) {
    const dims = s as number[];
    return g.constant(
      `${loss}_grad_seed`,
      tensor(dtype, dims, new Float64Array(dims.reduce((a, b) => a * b, 1)).fill(1)),
    );
  }
  const shape = g.op("Shape", [loss], {}, { name: `${loss}_grad_seed_shape` });
  return g.op(
    "ConstantOfShape",
    [shape],
    { value: { type: "tensor", value: tensor(dtype, [1], [1]) } },
    { name: `${loss}_grad_seed` },
  );
}

function zerosLike(g: Graph, w: string, info: StaticInfo): string {
  const dtype = info.dtype(w) ?? "float32";
  const s = info.shape(w);
  if (s?.every((d) => typeof d === "number")) {
    const dims = s as number[];
    return g.op(
      "Identity",
      [g.constant(`${w}_grad_zero`, tensor(dtype, dims, new Float64Array(dims.reduce((a, b) => a * b, 1))))],
      {},
      { name: `${w}_grad` },
    );
  }
  const shape = g.op("Shape", [w], {}, { name: `${w}_grad_shape` });
  return g.op(
    "ConstantOfShape",
    [shape],
    { value: { type: "tensor", value: tensor(dtype, [1], [0]) } },
    { name: `${w}_grad` },
  );
}
