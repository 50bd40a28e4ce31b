/**
 * Opset normalisation: a model from ai.onnx opset 1–21 is rewritten to the working opset (17), node by node, so
 * that the rest of qat (autodiff, quantisation, export) deals with one form of each op. Values keep their names.
 * One converter per op family lives in legacy.ts (broadcasting, Cast, Concat, Tile…), inputs.ts (attributes that
 * became inputs) and layers.ts (BatchNormalization, Softmax, Resize/Upsample, Q/DQ).
 */
import { OnnxError } from "../errors.js";
import { foldConstants } from "../fold.js";
import { type Model, type Node, topologicalOrder } from "../ir.js";
import { ELEMENTWISE_UNARY, PER_SAMPLE_NORMALIZATION, REDUCE } from "../op-families.js";
import { fmt } from "../shapes/dims.js";
import { constantValue, inferShapes } from "../shapes/index.js";
import { type Converter, makeConvertCtx } from "./context.js";
import * as inputs from "./inputs.js";
import * as layers from "./layers.js";
import * as legacy from "./legacy.js";
import { WORKING_OPSET } from "./working.js";

export { WORKING_OPSET } from "./working.js";

/** The oldest and newest ai.onnx opsets normalizeOpset reads. */
export const OLDEST_OPSET = 1;
export const NEWEST_OPSET = 21;

/** Ops whose form changed between opset 1 and 21, with the converter that brings them to 17. */
const CONVERTERS: Record<string, Converter> = {
  ...Object.fromEntries(
    ["Add", "Sub", "Mul", "Div", "Pow", "Equal", "Greater", "Less", "And", "Or", "Xor"].map((op) => [
      op,
      legacy.legacyBroadcast,
    ]),
  ),
  Gemm: legacy.gemm,
  Concat: legacy.concat,
  Cast: legacy.cast,
  Tile: legacy.tile,
  Scatter: legacy.scatter,
  ScatterElements: legacy.scatter,
  AveragePool: legacy.averagePool,
  Reshape: inputs.reshape,
  Squeeze: inputs.axesToInput,
  Unsqueeze: inputs.axesToInput,
  Split: inputs.split,
  Slice: inputs.slice,
  Pad: inputs.pad,
  Clip: inputs.clip,
  Dropout: inputs.dropout,
  ...Object.fromEntries(REDUCE.map((op) => [op, inputs.reduce])),
  BatchNormalization: layers.batchNorm,
  Softmax: layers.softmax,
  LogSoftmax: layers.softmax,
  Hardmax: layers.softmax,
  Upsample: layers.resize,
  Resize: layers.resize,
  QuantizeLinear: layers.qdq,
  DequantizeLinear: layers.qdq,
};

/**
 * Ops that exist at opset 17 and whose versions between 1 and 21 differ only in accepted types, in
 * `consumed_inputs` (dropped everywhere) or in attributes added with defaults that keep the old meaning.
 */
const STABLE = new Set([
  ...ELEMENTWISE_UNARY,
  ...PER_SAMPLE_NORMALIZATION,
  "Identity",
  "PRelu",
  "Conv",
  "ConvTranspose",
  "MaxPool",
  "LpPool",
  "GlobalAveragePool",
  "GlobalMaxPool",
  "GlobalLpPool",
  "MatMul",
  "Flatten",
  "Transpose",
  "Max",
  "Min",
  "Sum",
  "Mean",
  "Mod",
  "Where",
  "GreaterOrEqual",
  "LessOrEqual",
  "ArgMax",
  "ArgMin",
  "ConstantOfShape",
  "Range",
  "Expand",
  "Gather",
  "GatherElements",
  "SoftmaxCrossEntropyLoss",
  "Shape",
  "Size",
  "Constant",
  "LayerNormalization",
  "BitShift",
]);

export interface NormalizeOptions {
  /** Fold constant sub-expressions after conversion (default true). */
  fold?: boolean;
}

/**
 * Bring a model to the working opset, in place, and return it. Constant nodes become initializers; initializers
 * that IR < 4 files also list as graph inputs stop being inputs; value_info is re-inferred. Anything without an
 * opset-17 form raises an OnnxError naming the node and its op.
 */
export function normalizeOpset(model: Model, opts: NormalizeOptions = {}): Model {
  const from = model.opsets[""] ?? model.opsets["ai.onnx"] ?? OLDEST_OPSET;
  if (from < OLDEST_OPSET || from > NEWEST_OPSET) {
    throw new OnnxError(
      `ai.onnx opset ${from} is outside the ${OLDEST_OPSET}–${NEWEST_OPSET} qat can convert`,
    );
  }
  const g = model.graph;
  if (model.irVersion < 4) g.inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  const graphOutputs = new Set(g.outputs.map((v) => v.name));
  g.nodes = g.nodes.filter((n) => {
    if (!isDefault(n) || n.opType !== "Constant" || graphOutputs.has(n.outputs[0]!)) return true;
    const t = constantValue(n);
    if (!t)
      throw new OnnxError("Constant: only dense tensor values can be folded to initializers", {
        node: n.name,
      });
    g.initializers.set(n.outputs[0]!, t);
    g.valueInfo.delete(n.outputs[0]!);
    return false;
  });
  const known = inferShapes(g, { opset: from });
  const out: Node[] = [];
  const cx = makeConvertCtx(g, from, known, out);
  for (const n of topologicalOrder(g)) {
    if (isDefault(n)) {
      delete n.attrs.consumed_inputs;
      const convert = CONVERTERS[n.opType];
      if (convert) {
        try {
          convert(n, cx);
        } catch (e) {
          if (e instanceof OnnxError) throw e;
          cx.fail(n, `conversion failed (${(e as Error).message})`);
        }
      } else if (!STABLE.has(n.opType) && from !== WORKING_OPSET) {
        const shapes = n.inputs.map((i) => fmt(cx.shape(i))).join(", ");
        cx.fail(n, `qat has no conversion of ${n.opType} to opset ${WORKING_OPSET} (inputs ${shapes})`);
      }
      n.domain = "";
    }
    out.push(n);
  }
  g.nodes = out;
  delete model.opsets["ai.onnx"];
  model.opsets[""] = WORKING_OPSET;
  model.irVersion = Math.max(model.irVersion, 8);
  if (opts.fold !== false) foldConstants(g);
  const produced = new Set(g.nodes.flatMap((n) => n.outputs));
  for (const name of [...g.valueInfo.keys()]) if (!produced.has(name)) g.valueInfo.delete(name);
  inferShapes(g);
  g.invalidate();
  return model;
}

const isDefault = (n: Node) => n.domain === "" || n.domain === "ai.onnx";
