/**
 * Fixed batch → dynamic batch. Exporters often bake the batch size into a model (CNTK's mnist-8 reshapes to
 * [1, 256]); qat trains and evaluates in batches, so such a model is rewritten to take any batch when that is
 * provably safe: the batch dimension is followed from the input, node by node, as axis 0 of every value that carries
 * it, through ops known to treat it as an independent index. A Reshape constant whose first entry is the fixed
 * batch (and whose other entries keep the per-sample size) becomes -1 (or 0 when another entry is already -1).
 * A Concat of batch-carrying values with uniform constants (TFLite's channel padding) becomes a Pad (pad-constants.ts).
 * Anything else on the way (a constant holding batch-sized data, a Reshape that mixes samples, a reduction over the
 * batch, an op this pass does not know) stops the import with an ImportError naming the node.
 */
import { type Dim, type Graph, getAttr, type Node, topologicalOrder } from "../../onnx/ir.js";
import { ELEMENTWISE_UNARY, PER_SAMPLE_NORMALIZATION } from "../../onnx/op-families.js";
import { inferShapes } from "../../onnx/shapes.js";
import { i64, toNumbers } from "../../onnx/tensor.js";
import { ImportError } from "./errors.js";
import { type ConstantPadRewrite, padRewriteBlocker, rewriteConstantConcat } from "./pad-constants.js";

export interface BatchRewrite {
  node: string;
  from: number[];
  to: number[];
}

export type BatchReport =
  | { kind: "dynamic"; dim: string }
  | { kind: "rewritten"; fixed: number; reshapes: BatchRewrite[]; constantPads: ConstantPadRewrite[] };

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

/** The walk's state: the batch size being replaced, what carries the batch so far, the Reshapes rewritten. */
interface BatchWalk {
  g: Graph;
  fixed: number;
  file: string | undefined;
  /** The inferred shape of a value (before any rewrite). */
  shape: (v: string) => Dim[] | undefined;
  carries: Set<string>;
  reshapes: BatchRewrite[];
  constantPads: ConstantPadRewrite[];
}

/** One node that reads a batch-carrying value, as the checks see it. */
interface Step {
  w: BatchWalk;
  n: Node;
  /** The op type, prefixed with its domain when that is not the default one. */
  op: string;
  /** Which inputs carry the batch. */
  batched: boolean[];
  /** Rank of the first output, when known. */
  rank: number | undefined;
}

/**
 * Make the graph's input take any batch, in place, when its first dim is a fixed number. The graph must be at the
 * working opset with value_info inferred. Returns what was done; a graph whose batch is already symbolic is left
 * as it is.
 */
export function makeBatchDynamic(
  g: Graph,
  input: string,
  output: string | string[],
  file?: string,
): BatchReport {
  const vi = g.inputs.find((v) => v.name === input)!;
  const first = vi.shape?.[0];
  if (typeof first !== "number") {
    const dim = typeof first === "string" ? first : "batch";
    if (vi.shape && first === null) vi.shape[0] = dim;
    return { kind: "dynamic", dim };
  }
  const known = inferShapes(g);
  const w: BatchWalk = {
    g,
    fixed: first,
    file,
    shape: (v) => known.get(v)?.shape,
    carries: new Set([input]),
    reshapes: [],
    constantPads: [],
  };
  for (const n of topologicalOrder(g)) follow(w, n);

  const wanted = new Set(typeof output === "string" ? [output] : output);
  for (const o of wanted) {
    if (!w.carries.has(o)) {
      throw new ImportError(`the output '${o}' does not carry the batch of input '${input}'`, {
        file,
        value: o,
      });
    }
  }
  vi.shape![0] = "batch";
  for (const o of g.outputs) if (w.carries.has(o.name) && o.shape?.length) o.shape[0] = "batch";
  g.valueInfo.clear();
  inferShapes(g);
  return { kind: "rewritten", fixed: w.fixed, reshapes: w.reshapes, constantPads: w.constantPads };
}

/** Check one node against the batch (throwing when it is unsafe) and mark its outputs as carrying the batch. */
function follow(w: BatchWalk, n: Node): void {
  const batched = n.inputs.map((i) => !!i && w.carries.has(i));
  if (!batched.some(Boolean)) return;
  const out0 = n.outputs[0]!;
  const op = n.domain === "" || n.domain === "ai.onnx" ? n.opType : `${n.domain}::${n.opType}`;
  checkStep({ w, n, op, batched, rank: w.shape(out0)?.length });
  // BatchNormalization's running mean and variance outputs are per channel, not per sample
  for (const o of op === "BatchNormalization" ? [out0] : n.outputs) if (o) w.carries.add(o);
}

/** Throws an ImportError when `s.n` does not keep the samples of the batch independent. */
function checkStep(s: Step): void {
  const { op } = s;
  if (PER_SAMPLE.has(op)) onlyFirst(s);
  else if (BROADCAST.has(op)) checkBroadcast(s);
  else if (op.startsWith("Reduce") || op === "ArgMax" || op === "ArgMin") checkReduction(s);
  else if (op === "Reshape") {
    onlyFirst(s);
    rewriteReshape(s.w, s.n);
  } else {
    const check = AXIS_CHECKS.get(op);
    if (!check) fail(s.w, s.n, `qat cannot tell how ${op} treats the batch axis`);
    check(s);
  }
}

function fail(w: BatchWalk, n: Node, why: string): never {
  throw new ImportError(
    `the model's batch is fixed at ${w.fixed} and cannot be made dynamic here: ${why}. Re-export the model with a ` +
      "dynamic batch axis (torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}}))",
    { file: w.file, node: n.name, opType: n.opType },
  );
}

/** The batch may reach only the first input; the others are parameters. */
function onlyFirst(s: Step): void {
  if (s.batched.slice(1).some(Boolean)) fail(s.w, s.n, "a batch-carrying value feeds one of its parameters");
}

/** The integer values of input `i` when it is an initializer. */
function intsOf(g: Graph, n: Node, i: number): number[] | undefined {
  const t = n.inputs[i] ? g.initializers.get(n.inputs[i]!) : undefined;
  return t ? toNumbers(t) : undefined;
}

/** The node's `axis` attribute (or `def`), made non-negative when the rank is known. */
function axisOf(n: Node, def: number, rank: number | undefined): number {
  const a = getAttr(n, "axis", "int")?.value ?? def;
  return a < 0 && rank !== undefined ? a + rank : a;
}

/** Whether any of `axes` (negative ones counted from the end of `rank`) is the batch axis. */
function touchesBatch(axes: number[], rank: number | undefined): boolean {
  return axes.some((a) => (a < 0 && rank !== undefined ? a + rank : a) === 0);
}

/** Broadcasting: a batch-carrying input must have the output's rank; any other must have one row at axis 0. */
function checkBroadcast({ w, n, batched, rank }: Step): void {
  n.inputs.forEach((i, k) => {
    if (!i) return;
    const s = w.shape(i);
    if (batched[k]) {
      if (s?.length !== rank) fail(w, n, `input '${i}' carries the batch but is broadcast to rank ${rank}`);
    } else if (!s) fail(w, n, `the shape of input '${i}' is unknown`);
    else if (s.length === rank && s[0] !== 1) {
      fail(
        w,
        n,
        `input '${i}' has ${s[0]} rows along the batch axis (shape [${s}]), so it depends on the batch size`,
      );
    }
  });
}

/** Reductions and ArgMax/ArgMin: never over axis 0, with axes that are not computed from the batch. */
function checkReduction({ w, n, op, batched }: Step): void {
  const axes = getAttr(n, "axes", "ints")?.value ?? intsOf(w.g, n, 1);
  const r = w.shape(n.inputs[0]!)?.length;
  const all = op.startsWith("Reduce") ? !axes || axes.length === 0 : false;
  const axisList = op.startsWith("Reduce") ? (axes ?? []) : [axisOf(n, 0, r)];
  if (all || touchesBatch(axisList, r)) fail(w, n, "it reduces over the batch axis");
  if (batched.slice(1).some(Boolean)) fail(w, n, "its axes depend on the batch");
}

/** Ops that are safe unless they act on axis 0 (or take the batch in the wrong operand), by op type. */
const AXIS_CHECKS = new Map<string, (s: Step) => void>(
  Object.entries({
    Flatten: ({ w, n }) => {
      if (axisOf(n, 1, w.shape(n.inputs[0]!)?.length) < 1)
        fail(w, n, "it flattens the batch axis with the rest");
    },
    Concat: ({ w, n, batched }) => {
      const rank = w.shape(n.inputs[0]!)?.length;
      const axis = axisOf(n, 0, rank);
      if (axis === 0) fail(w, n, "it concatenates along the batch axis");
      if (batched.every(Boolean)) return;
      const why = padRewriteBlocker(w.g, n, batched);
      if (why || rank === undefined || axis < 0) {
        fail(w, n, `it concatenates a batch-carrying value with a constant (${why ?? "of unknown rank"})`);
      }
      const { carriers, rewrite } = rewriteConstantConcat(w.g, n, batched, axis, rank);
      for (const c of carriers) w.carries.add(c);
      w.constantPads.push(rewrite);
    },
    Split: (s) => {
      if (axisOf(s.n, 0, s.w.shape(s.n.inputs[0]!)?.length) === 0)
        fail(s.w, s.n, "it splits along the batch axis");
      onlyFirst(s);
    },
    Transpose: ({ w, n }) => {
      if (getAttr(n, "perm", "ints")?.value?.[0] !== 0) fail(w, n, "it moves the batch axis");
    },
    Softmax: checkSoftmax,
    LogSoftmax: checkSoftmax,
    Hardmax: checkSoftmax,
    Squeeze: ({ w, n }) => {
      const axes = intsOf(w.g, n, 1);
      if (!axes || touchesBatch(axes, w.shape(n.inputs[0]!)?.length)) fail(w, n, "it removes axis 0");
    },
    Unsqueeze: ({ w, n, rank }) => {
      const axes = intsOf(w.g, n, 1);
      if (!axes || touchesBatch(axes, rank)) fail(w, n, "it inserts axis 0");
    },
    Slice: (s) => {
      const axes = intsOf(s.w.g, s.n, 3);
      if (!s.n.inputs[3] || !axes || touchesBatch(axes, s.w.shape(s.n.inputs[0]!)?.length))
        fail(s.w, s.n, "it slices along the batch axis");
      onlyFirst(s);
    },
    Gather: ({ w, n, batched }) => {
      if (!batched[0] || batched[1] || axisOf(n, 0, w.shape(n.inputs[0]!)?.length) === 0)
        fail(w, n, "it gathers along the batch axis");
    },
    Pad: (s) => {
      const pads = intsOf(s.w.g, s.n, 1);
      const r = s.w.shape(s.n.inputs[0]!)?.length;
      if (!pads || r === undefined || pads[0] !== 0 || pads[r] !== 0 || s.n.inputs[3])
        fail(s.w, s.n, "it may pad the batch axis");
      onlyFirst(s);
    },
    MatMul: ({ w, n, batched }) => {
      const b = w.shape(n.inputs[1]!);
      if (!batched[0] || batched[1] || (w.shape(n.inputs[0]!)?.length ?? 0) < 2 || (b?.length ?? 3) > 2) {
        fail(w, n, "its batch-carrying operand is not a [batch, …, K] left factor of a weight matrix");
      }
    },
    Gemm: ({ w, n, batched }) => {
      const c = n.inputs[2] ? w.shape(n.inputs[2]) : undefined;
      if (!batched[0] || batched[1] || batched[2] || getAttr(n, "transA", "int")?.value === 1)
        fail(w, n, "the batch is not the rows of A");
      if (c && c.length === 2 && c[0] !== 1)
        fail(w, n, `its C input has ${c[0]} rows, so it depends on the batch size`);
    },
    Resize: (s) => {
      const scales = s.n.inputs[2] ? s.w.g.initializers.get(s.n.inputs[2]) : undefined;
      if (!scales || s.n.inputs[3] || toNumbers(scales)[0] !== 1)
        fail(s.w, s.n, "its output size is fixed, batch included");
      onlyFirst(s);
    },
  }),
);

function checkSoftmax({ w, n, rank }: Step): void {
  if (axisOf(n, -1, rank) === 0) fail(w, n, "it normalises across the batch");
}

/**
 * A Reshape that keeps samples apart: its constant target's leading fixed batch becomes -1 (0 when another entry is
 * already -1), recorded in the walk's report.
 */
function rewriteReshape(w: BatchWalk, n: Node): void {
  const { g, fixed } = w;
  const name = n.inputs[1]!;
  const t = g.initializers.get(name);
  if (!t) fail(w, n, "its target shape is computed, not a constant");
  const target = toNumbers(t);
  const inShape = w.shape(n.inputs[0]!);
  const outShape = w.shape(n.outputs[0]!);
  const allowZero = getAttr(n, "allowzero", "int")?.value === 1;
  const numeric = (s: Dim[] | undefined): s is number[] => !!s && s.every((d) => typeof d === "number");
  if (!numeric(inShape) || !numeric(outShape) || inShape[0] !== fixed)
    fail(w, n, "its input or output shape is not known");
  const perSample = (s: number[]) => s.slice(1).reduce((a, b) => a * b, 1);
  if (outShape[0] !== fixed || perSample(inShape) !== perSample(outShape)) {
    fail(w, n, `it reshapes [${inShape}] to [${outShape}], mixing samples of the batch`);
  }
  if (target[0] === -1 || (target[0] === 0 && !allowZero)) return;
  if (target[0] !== fixed) fail(w, n, `its target shape [${target}] does not start with the batch`);
  const to = [...target];
  to[0] = target.slice(1).includes(-1) ? 0 : -1;
  if (to[0] === 0 && allowZero)
    fail(w, n, "allowzero=1 and another entry is -1, so the batch cannot be copied");
  // a constant shared with another node is copied, so only this Reshape changes
  const users = g.nodes.filter((m) => m.inputs.includes(name)).length;
  const newName = users > 1 ? g.uniqueName(`${name}_dynamic`) : name;
  g.initializers.set(newName, i64([to.length], to));
  n.inputs[1] = newName;
  w.reshapes.push({ node: n.name, from: target, to });
}
