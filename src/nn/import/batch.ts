/**
 * Fixed batch → dynamic batch. Exporters often bake the batch size into a model (CNTK's mnist-8 reshapes to
 * [1, 256]); qat trains and evaluates in batches, so such a model is rewritten to take any batch when that is
 * provably safe: the batch dimension is followed from the input, node by node, as axis 0 of every value that carries
 * it, through ops known to treat it as an independent index. A Reshape constant whose first entry is the fixed
 * batch (and whose other entries keep the per-sample size) becomes -1 (or 0 when another entry is already -1).
 * Anything else on the way (a constant holding batch-sized data, a Reshape that mixes samples, a reduction over the
 * batch, an op this pass does not know) stops the import with an ImportError naming the node.
 */
import { type Dim, type Graph, getAttr, type Node, topologicalOrder } from "../../onnx/ir.js";
import { ELEMENTWISE_UNARY, PER_SAMPLE_NORMALIZATION } from "../../onnx/op-families.js";
import { inferShapes } from "../../onnx/shapes.js";
import { i64, toNumbers } from "../../onnx/tensor.js";
import { ImportError } from "./errors.js";

export interface BatchRewrite {
  node: string;
  from: number[];
  to: number[];
}

export type BatchReport =
  | { kind: "dynamic"; dim: string }
  | { kind: "rewritten"; fixed: number; reshapes: BatchRewrite[] };

/** Ops whose output i has the batch at axis 0 when their first input has, with no other input carrying it. */
const PER_SAMPLE = new Set([
  ...ELEMENTWISE_UNARY,
  ...PER_SAMPLE_NORMALIZATION,
  "Identity",
  "Clip",
  "Dropout",
  "Cast",
  "Conv",
  "ConvTranspose",
  "MaxPool",
  "AveragePool",
  "LpPool",
  "GlobalAveragePool",
  "GlobalMaxPool",
  "GlobalLpPool",
  "BatchNormalization",
  "QuantizeLinear",
  "DequantizeLinear",
]);

/** Elementwise ops with multidirectional broadcasting. */
const BROADCAST = new Set([
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Pow",
  "Max",
  "Min",
  "Sum",
  "Mean",
  "Where",
  "PRelu",
  "Equal",
  "Greater",
  "Less",
  "GreaterOrEqual",
  "LessOrEqual",
  "And",
  "Or",
  "Xor",
  "Mod",
]);

/**
 * Make the graph's input take any batch, in place, when its first dim is a fixed number. The graph must be at the
 * working opset with value_info inferred. Returns what was done; a graph whose batch is already symbolic is left
 * as it is.
 */
export function makeBatchDynamic(g: Graph, input: string, output: string, file?: string): BatchReport {
  const vi = g.inputs.find((v) => v.name === input)!;
  const first = vi.shape?.[0];
  if (typeof first !== "number") {
    const dim = typeof first === "string" ? first : "batch";
    if (vi.shape && first === null) vi.shape[0] = dim;
    return { kind: "dynamic", dim };
  }
  const fixed = first;
  const known = inferShapes(g);
  const carries = new Set([input]);
  const reshapes: BatchRewrite[] = [];
  const shape = (v: string): Dim[] | undefined => known.get(v)?.shape;
  const fail = (n: Node, why: string): never => {
    throw new ImportError(
      `the model's batch is fixed at ${fixed} and cannot be made dynamic here: ${why}. Re-export the model with a ` +
        "dynamic batch axis (torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}))",
      { file, node: n.name, opType: n.opType },
    );
  };
  const intsOf = (n: Node, i: number): number[] | undefined => {
    const t = n.inputs[i] ? g.initializers.get(n.inputs[i]!) : undefined;
    return t ? toNumbers(t) : undefined;
  };
  const axisOf = (n: Node, def: number, rank: number | undefined): number => {
    const a = getAttr(n, "axis", "int")?.value ?? def;
    return a < 0 && rank !== undefined ? a + rank : a;
  };

  for (const n of topologicalOrder(g)) {
    const batched = n.inputs.map((i) => !!i && carries.has(i));
    if (!batched.some(Boolean)) continue;
    const out0 = n.outputs[0]!;
    const rank = shape(out0)?.length;
    const mark = (outs = n.outputs) => {
      for (const o of outs) if (o) carries.add(o);
    };
    const onlyFirst = () => {
      if (batched.slice(1).some(Boolean)) fail(n, "a batch-carrying value feeds one of its parameters");
    };
    const op = n.domain === "" || n.domain === "ai.onnx" ? n.opType : `${n.domain}::${n.opType}`;

    if (PER_SAMPLE.has(op)) {
      onlyFirst();
      mark(op === "BatchNormalization" ? [out0] : undefined);
    } else if (BROADCAST.has(op)) {
      n.inputs.forEach((i, k) => {
        if (!i) return;
        const s = shape(i);
        if (batched[k]) {
          if (s?.length !== rank) fail(n, `input '${i}' carries the batch but is broadcast to rank ${rank}`);
        } else if (!s) fail(n, `the shape of input '${i}' is unknown`);
        else if (s.length === rank && s[0] !== 1) {
          fail(
            n,
            `input '${i}' has ${s[0]} rows along the batch axis (shape [${s}]), so it depends on the batch size`,
          );
        }
      });
      mark();
    } else if (op === "Flatten") {
      if (axisOf(n, 1, shape(n.inputs[0]!)?.length) < 1) fail(n, "it flattens the batch axis with the rest");
      mark();
    } else if (op === "Concat" || op === "Split") {
      const r = shape(n.inputs[0]!)?.length;
      if (axisOf(n, 0, r) === 0)
        fail(n, `it ${op === "Concat" ? "concatenates" : "splits"} along the batch axis`);
      if (op === "Concat" && !batched.every(Boolean))
        fail(n, "it concatenates a batch-carrying value with a constant");
      if (op === "Split") onlyFirst();
      mark();
    } else if (op === "Transpose") {
      const perm = getAttr(n, "perm", "ints")?.value;
      if (perm?.[0] !== 0) fail(n, "it moves the batch axis");
      mark();
    } else if (op === "Softmax" || op === "LogSoftmax" || op === "Hardmax") {
      if (axisOf(n, -1, rank) === 0) fail(n, "it normalises across the batch");
      mark();
    } else if (op.startsWith("Reduce") || op === "ArgMax" || op === "ArgMin") {
      const axes = getAttr(n, "axes", "ints")?.value ?? intsOf(n, 1);
      const r = shape(n.inputs[0]!)?.length;
      const all = op.startsWith("Reduce") ? !axes || axes.length === 0 : false;
      const axisList = op.startsWith("Reduce") ? (axes ?? []) : [axisOf(n, 0, r)];
      if (all || axisList.some((a) => (a < 0 && r !== undefined ? a + r : a) === 0))
        fail(n, "it reduces over the batch axis");
      if (batched.slice(1).some(Boolean)) fail(n, "its axes depend on the batch");
      mark();
    } else if (op === "Squeeze" || op === "Unsqueeze") {
      const axes = intsOf(n, 1);
      const r = op === "Squeeze" ? shape(n.inputs[0]!)?.length : rank;
      if (!axes || axes.some((a) => (a < 0 && r !== undefined ? a + r : a) === 0))
        fail(n, `it ${op === "Squeeze" ? "removes" : "inserts"} axis 0`);
      mark();
    } else if (op === "Slice") {
      const axes = intsOf(n, 3);
      const r = shape(n.inputs[0]!)?.length;
      if (!n.inputs[3] || !axes || axes.some((a) => (a < 0 && r !== undefined ? a + r : a) === 0))
        fail(n, "it slices along the batch axis");
      onlyFirst();
      mark();
    } else if (op === "Gather") {
      if (!batched[0] || batched[1] || axisOf(n, 0, shape(n.inputs[0]!)?.length) === 0)
        fail(n, "it gathers along the batch axis");
      mark();
    } else if (op === "Pad") {
      const pads = intsOf(n, 1);
      const r = shape(n.inputs[0]!)?.length;
      if (!pads || r === undefined || pads[0] !== 0 || pads[r] !== 0 || n.inputs[3])
        fail(n, "it may pad the batch axis");
      onlyFirst();
      mark();
    } else if (op === "MatMul") {
      const b = shape(n.inputs[1]!);
      if (!batched[0] || batched[1] || (shape(n.inputs[0]!)?.length ?? 0) < 2 || (b?.length ?? 3) > 2) {
        fail(n, "its batch-carrying operand is not a [batch, …, K] left factor of a weight matrix");
      }
      mark();
    } else if (op === "Gemm") {
      const c = n.inputs[2] ? shape(n.inputs[2]) : undefined;
      if (!batched[0] || batched[1] || batched[2] || getAttr(n, "transA", "int")?.value === 1)
        fail(n, "the batch is not the rows of A");
      if (c && c.length === 2 && c[0] !== 1)
        fail(n, `its C input has ${c[0]} rows, so it depends on the batch size`);
      mark();
    } else if (op === "Resize") {
      const scales = n.inputs[2] ? g.initializers.get(n.inputs[2]) : undefined;
      if (!scales || n.inputs[3] || toNumbers(scales)[0] !== 1)
        fail(n, "its output size is fixed, batch included");
      onlyFirst();
      mark();
    } else if (op === "Reshape") {
      onlyFirst();
      rewriteReshape(n);
      mark();
    } else {
      fail(n, `qat cannot tell how ${op} treats the batch axis`);
    }
  }

  function rewriteReshape(n: Node): void {
    const name = n.inputs[1]!;
    const t = g.initializers.get(name);
    if (!t) fail(n, "its target shape is computed, not a constant");
    const target = toNumbers(t!);
    const inShape = shape(n.inputs[0]!);
    const outShape = shape(n.outputs[0]!);
    const allowZero = getAttr(n, "allowzero", "int")?.value === 1;
    const numeric = (s: Dim[] | undefined): s is number[] => !!s && s.every((d) => typeof d === "number");
    if (!numeric(inShape) || !numeric(outShape) || inShape[0] !== fixed)
      fail(n, "its input or output shape is not known");
    const perSample = (s: number[]) => s.slice(1).reduce((a, b) => a * b, 1);
    if (outShape![0] !== fixed || perSample(inShape as number[]) !== perSample(outShape as number[])) {
      fail(n, `it reshapes [${inShape}] to [${outShape}], mixing samples of the batch`);
    }
    if (target[0] === -1 || (target[0] === 0 && !allowZero)) return;
    if (target[0] !== fixed) fail(n, `its target shape [${target}] does not start with the batch`);
    const to = [...target];
    to[0] = target.slice(1).includes(-1) ? 0 : -1;
    if (to[0] === 0 && allowZero)
      fail(n, "allowzero=1 and another entry is -1, so the batch cannot be copied");
    // a constant shared with another node is copied, so only this Reshape changes
    const users = g.nodes.filter((m) => m.inputs.includes(name)).length;
    const newName = users > 1 ? g.uniqueName(`${name}_dynamic`) : name;
    g.initializers.set(newName, i64([to.length], to));
    n.inputs[1] = newName;
    reshapes.push({ node: n.name, from: target, to });
  }

  const out = g.outputs.find((o) => o.name === output);
  if (!carries.has(output)) {
    throw new ImportError(`the output '${output}' does not carry the batch of input '${input}'`, {
      file,
      value: output,
    });
  }
  vi.shape![0] = "batch";
  if (out?.shape && out.shape.length > 0) out.shape[0] = "batch";
  for (const o of g.outputs) if (o !== out && carries.has(o.name) && o.shape?.length) o.shape[0] = "batch";
  g.valueInfo.clear();
  inferShapes(g);
  return { kind: "rewritten", fixed, reshapes };
}
