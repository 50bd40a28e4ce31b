/**
 * Shape and type inference over a Graph. One rule per op, grouped by family (conv.ts, layout.ts, …); each rule
 * reads what is known of its inputs and says what is known of its outputs, or raises an OnnxError naming the node,
 * its op type and the shapes that do not fit. Ops it does not know leave their outputs unknown.
 */
import type { DType } from "../dtype.js";
import { OnnxError } from "../errors.js";
import { type Dim, type Graph, type Model, topologicalOrder, type ValueInfo } from "../ir.js";
import { WORKING_OPSET } from "../opset/working.js";
import type { Tensor } from "../tensor.js";
import { type Known, makeCtx, type ShapeRule } from "./context.js";
import { convRules } from "./conv.js";
import { fmt as formatShape } from "./dims.js";
import { elementwiseRules } from "./elementwise.js";
import { generatorRules, knownOf } from "./generators.js";
import { indexingRules } from "./indexing.js";
import { layoutRules } from "./layout.js";
import { linalgRules } from "./linalg.js";
import { normRules } from "./norm.js";
import { quantRules } from "./quant.js";
import { reduceRules } from "./reduce.js";

export { BroadcastError, broadcastShapes } from "./broadcast.js";
export type { Known, RuleCtx, ShapeRule } from "./context.js";
export { fmt as formatShape } from "./dims.js";
export { constantValue, knownOf } from "./generators.js";
export { sliceRange } from "./layout.js";

/** Shape rules of the ai.onnx ops, by op type. */
export const SHAPE_RULES: Readonly<Record<string, ShapeRule>> = {
  ...elementwiseRules,
  ...convRules,
  ...linalgRules,
  ...normRules,
  ...layoutRules,
  ...reduceRules,
  ...quantRules,
  ...generatorRules,
  ...indexingRules,
};

/** Shape rules of ops in other domains (e.g. qat's own fake-quantize op), keyed "domain::op". */
const DOMAIN_RULES = new Map<string, ShapeRule>();

/** Teach shape inference an op of another domain (ai.onnx ops have their rules in this folder). */
export function registerShapeRule(domain: string, opType: string, rule: ShapeRule): void {
  DOMAIN_RULES.set(`${domain}::${opType}`, rule);
}

export interface InferOptions {
  /** The graph's ai.onnx opset (rules for ops whose form changed read it). Default: the working opset. */
  opset?: number;
}

/**
 * Fill `g.valueInfo` with the dtype and shape of every node output (graph inputs and initializers stay where they
 * are; graph outputs get what they were missing). Symbolic dims propagate by name; unknown dims are null. What
 * the file said about a value is kept where inference knows less. Subgraphs are not visited.
 */
export function inferShapes(g: Graph, opts: InferOptions = {}): Map<string, Known> {
  const opset = opts.opset ?? WORKING_OPSET;
  const known = new Map<string, Known>();
  for (const [name, vi] of g.valueInfo)
    known.set(name, { dtype: vi.dtype, shape: vi.shape && [...vi.shape] });
  for (const v of g.inputs) known.set(v.name, { dtype: v.dtype, shape: v.shape && [...v.shape] });
  for (const [name, t] of g.initializers) known.set(name, knownOf(t));
  const constants = (name: string): Tensor | undefined => g.initializers.get(name);
  let order: ReturnType<typeof topologicalOrder>;
  try {
    order = topologicalOrder(g);
  } catch (e) {
    throw new OnnxError((e as Error).message);
  }
  for (const node of order) {
    const rule =
      node.domain === "" || node.domain === "ai.onnx"
        ? SHAPE_RULES[node.opType]
        : DOMAIN_RULES.get(`${node.domain}::${node.opType}`);
    let results: Known[] = [];
    try {
      if (rule) results = rule(makeCtx(node, opset, (n) => known.get(n), constants));
    } catch (e) {
      if (e instanceof OnnxError) throw e;
      const shapes = node.inputs.map((i) => formatShape(known.get(i)?.shape)).join(", ");
      throw new OnnxError(
        `${node.opType}: shape inference failed on inputs ${shapes} (${(e as Error).message})`,
        {
          node: node.name || node.outputs[0],
        },
      );
    }
    node.outputs.forEach((out, i) => {
      if (!out) return;
      const inferred = results[i] ?? {};
      const merged = merge(inferred, g.valueInfo.get(out));
      known.set(out, merged);
      if (merged.dtype !== undefined || merged.shape !== undefined) {
        const prev = g.valueInfo.get(out);
        g.valueInfo.set(out, {
          ...prev,
          name: out,
          dtype: merged.dtype,
          shape: merged.shape && [...merged.shape],
        });
      }
    });
  }
  for (const o of g.outputs) {
    const k = known.get(o.name);
    if (!k) continue;
    if (o.dtype === undefined) o.dtype = k.dtype;
    if (o.shape === undefined) o.shape = k.shape && [...k.shape];
    else if (k.shape && k.shape.length === o.shape.length)
      o.shape = o.shape.map((d, i) => (d === null ? k.shape![i]! : d));
  }
  return known;
}

/** Inference on a model's main graph at the model's own ai.onnx opset. */
export function inferModelShapes(model: Model): Map<string, Known> {
  return inferShapes(model.graph, { opset: model.opsets[""] ?? model.opsets["ai.onnx"] ?? WORKING_OPSET });
}

/** Inferred knowledge, with the file's value_info filling what inference left unknown. */
function merge(inferred: Known, file: ValueInfo | undefined): Known {
  if (!file) return inferred;
  const dtype = inferred.dtype ?? file.dtype;
  let shape = inferred.shape;
  if (!shape) shape = file.shape && [...file.shape];
  else if (file.shape && file.shape.length === shape.length) {
    shape = shape.map((d, i) => (d === null ? file.shape![i]! : d));
  }
  return { dtype, shape, value: inferred.value };
}

/** The shape of a value as far as the graph knows it: an input, an initializer, value_info or an output. */
export function shapeOf(g: Graph, name: string): Dim[] | undefined {
  const t = g.initializers.get(name);
  if (t) return [...t.dims];
  return (
    g.inputs.find((v) => v.name === name) ??
    g.valueInfo.get(name) ??
    g.outputs.find((v) => v.name === name)
  )?.shape;
}

/** The element type of a value as far as the graph knows it. */
export function dtypeOf(g: Graph, name: string): DType | undefined {
  const t = g.initializers.get(name);
  if (t) return t.dtype;
  return (
    g.inputs.find((v) => v.name === name) ??
    g.valueInfo.get(name) ??
    g.outputs.find((v) => v.name === name)
  )?.dtype;
}
