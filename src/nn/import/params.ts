/**
 * Which initializers of an imported graph are trained. A float initializer is a weight when every node reading it
 * reads it in a weight slot (Conv's W and B, Gemm/MatMul operands, a BatchNormalization scale and bias, an
 * elementwise operand such as CNTK's bias Add…). Everything else is frozen: integer tensors (shapes, axes,
 * indices), float tensors in non-differentiable slots (Reshape's shape, Resize's scales, Clip's bounds, Pad's
 * value, Dropout's ratio), scalars in elementwise arithmetic (constants such as 1/255, not learned values), BN
 * running statistics (buffers). A weight is then trained only if the backward pass can reach it: weights behind a
 * node without a gradient rule, or that do not influence the output, are frozen too, with the reason.
 */
import { AutodiffError, appendBackward, hasGradientRule } from "../../autodiff/index.js";
import { cloneGraph, type Graph, type Node, topologicalOrder } from "../../onnx/ir.js";
import { numel } from "../../onnx/tensor.js";
import { ImportError } from "./errors.js";

/** Input slots holding learnable values, per op type ("all": every input). */
const WEIGHT_SLOTS: Record<string, number[] | "all"> = {
  Conv: [1, 2],
  ConvTranspose: [1, 2],
  Gemm: "all",
  MatMul: "all",
  Add: "all",
  Sub: "all",
  Mul: "all",
  Div: "all",
  Sum: "all",
  Mean: "all",
  Max: "all",
  Min: "all",
  Concat: "all",
  Where: [1, 2],
  Pow: [0],
  PRelu: [1],
  BatchNormalization: [1, 2],
  InstanceNormalization: [1, 2],
  LayerNormalization: [1, 2],
};

/** Elementwise ops where a one-element operand is a constant of the formula, not a learned value. */
const ARITHMETIC = new Set(["Add", "Sub", "Mul", "Div", "Sum", "Mean", "Max", "Min", "Where", "Pow"]);

export interface FrozenTensor {
  name: string;
  dims: number[];
  numel: number;
  reason: string;
}

export interface ParamSplit {
  trainable: string[];
  frozen: FrozenTensor[];
  /** Nodes without a gradient rule that stand between a weight and the output (each blocks the weights before it). */
  blocking: { node: string; opType: string }[];
}

const isDefault = (n: Node) => n.domain === "" || n.domain === "ai.onnx";

/**
 * Split the float initializers of `g` (the training graph, `output` its logits) into trained and frozen ones.
 * `exclude` are initializers that are neither (buffers). Throws an ImportError naming the blocking op when the graph
 * has weights but none can be trained.
 */
export function splitParams(g: Graph, output: string, exclude: Set<string>, file?: string): ParamSplit {
  const frozen: FrozenTensor[] = [];
  const freeze = (name: string, reason: string) => {
    const t = g.initializers.get(name)!;
    frozen.push({ name, dims: [...t.dims], numel: numel(t.dims), reason });
  };
  const uses = g.consumers();
  const candidates: string[] = [];
  for (const [name, t] of g.initializers) {
    if (exclude.has(name)) continue;
    if (t.dtype !== "float32") {
      if (t.dtype === "float64") freeze(name, "float64 (qat trains float32)");
      continue;
    }
    const readers = uses.get(name) ?? [];
    if (readers.length === 0) continue;
    let reason: string | undefined;
    for (const n of readers) {
      const slots = isDefault(n) ? WEIGHT_SLOTS[n.opType] : undefined;
      const idx = n.inputs.map((v, i) => (v === name ? i : -1)).filter((i) => i >= 0);
      if (!slots || idx.some((i) => slots !== "all" && !slots.includes(i))) {
        reason = `read by ${n.opType} '${n.name}' in a slot that is not a weight`;
        break;
      }
      if (numel(t.dims) === 1 && ARITHMETIC.has(n.opType)) {
        reason = `a scalar constant of ${n.opType} '${n.name}'`;
        break;
      }
    }
    if (reason) freeze(name, reason);
    else candidates.push(name);
  }

  // weights that influence the output at all
  const reaches = new Set([output]);
  const order = topologicalOrder(g);
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k]!;
    if (n.outputs.some((o) => o && reaches.has(o))) for (const i of n.inputs) if (i) reaches.add(i);
  }
  let wrt = candidates.filter((c) => {
    if (reaches.has(c)) return true;
    freeze(c, `does not influence the output '${output}'`);
    return false;
  });

  // weights behind a node without a gradient rule: ask the backward builder itself, on a copy of the graph
  const blocking: ParamSplit["blocking"] = [];
  const producers = g.producers();
  for (;;) {
    if (wrt.length === 0) break;
    const trial = cloneGraph(g);
    const loss = trial.op("ReduceSum", [output], { keepdims: 0 });
    try {
      appendBackward(trial, loss, wrt);
      break;
    } catch (e) {
      if (!(e instanceof AutodiffError) || !e.where.node) throw e;
      const node = g.nodes.find((n) => n.name === e.where.node);
      if (!node) throw e;
      const before = ancestors(node, producers);
      const behind = wrt.filter((w) => before.has(w));
      if (behind.length === 0) throw e;
      blocking.push({ node: node.name, opType: node.opType });
      for (const w of behind) {
        freeze(
          w,
          `behind ${node.opType} '${node.name}', which qat has no gradient rule for (kept in float, frozen)`,
        );
      }
      wrt = wrt.filter((w) => !before.has(w));
    }
  }
  if (wrt.length === 0 && candidates.length > 0) {
    const b = blocking[0];
    throw new ImportError(
      b
        ? `no weight can be trained: every weight sits behind ${blocking.map((x) => `${x.opType} '${x.node}'`).join(", ")}, ` +
            "which qat has no gradient rule for. Replace the op, or move it after the trained layers"
        : `no weight influences the output '${output}'`,
      { file, node: b?.node, opType: b?.opType },
    );
  }
  return { trainable: wrt, frozen, blocking };
}

/** Every value a node depends on, transitively (initializers and inputs included). */
function ancestors(node: Node, producers: Map<string, Node>): Set<string> {
  const seen = new Set<string>();
  const stack = [...node.inputs];
  while (stack.length) {
    const v = stack.pop()!;
    if (!v || seen.has(v)) continue;
    seen.add(v);
    const p = producers.get(v);
    if (p) stack.push(...p.inputs);
  }
  return seen;
}

/** Op types of a graph with whether qat can train through each. */
export function opTable(g: Graph): { opType: string; count: number; trainable: boolean; nodes: string[] }[] {
  const m = new Map<string, { opType: string; count: number; trainable: boolean; nodes: string[] }>();
  for (const n of g.nodes) {
    const key = isDefault(n) ? n.opType : `${n.domain}::${n.opType}`;
    let e = m.get(key);
    if (!e) {
      e = { opType: key, count: 0, trainable: hasGradientRule(n.opType, n.domain), nodes: [] };
      m.set(key, e);
    }
    e.count++;
    e.nodes.push(n.name);
  }
  return [...m.values()].sort((a, b) => b.count - a.count || a.opType.localeCompare(b.opType));
}
