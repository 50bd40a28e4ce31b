import type { DType } from "../dtype.js";
import { OnnxError } from "../errors.js";
import type { Attr, Dim, Graph, Node } from "../ir.js";
import type { Known } from "../shapes/index.js";
import type { Tensor } from "../tensor.js";

/** What a converter sees: the graph, the source opset, what inference knew at that opset, and node builders. */
export interface ConvertCtx {
  readonly g: Graph;
  /** The model's ai.onnx opset before normalisation. */
  readonly from: number;
  shape(name: string): Dim[] | undefined;
  dtype(name: string): DType | undefined;
  /** An initializer's tensor (constants were folded to initializers before conversion). */
  constant(name: string): Tensor | undefined;
  /** The integer values of a small constant, if `name` is one. */
  ints(name: string): number[] | undefined;
  /** How many node inputs and graph outputs read a value. */
  uses(name: string): number;
  /** Add an initializer under a fresh name and return that name. */
  addConst(base: string, t: Tensor): string;
  /** Insert a node before the one being converted; returns its (fresh) output name. */
  insert(opType: string, inputs: string[], attrs?: Record<string, Attr>, base?: string): string;
  fail(n: Node, message: string): never;
}

/** Converts one node in place (op type, attributes, inputs) to its working-opset form; outputs keep their names. */
export type Converter = (n: Node, cx: ConvertCtx) => void;

export function makeConvertCtx(g: Graph, from: number, known: Map<string, Known>, out: Node[]): ConvertCtx {
  const uses = new Map<string, number>();
  for (const n of g.nodes) for (const i of n.inputs) if (i) uses.set(i, (uses.get(i) ?? 0) + 1);
  for (const o of g.outputs) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
  const overridable = new Set(g.inputs.map((v) => v.name));
  const constant = (name: string) => (overridable.has(name) ? undefined : g.initializers.get(name));
  return {
    g,
    from,
    shape: (name) =>
      g.initializers.has(name) ? [...g.initializers.get(name)!.dims] : known.get(name)?.shape,
    dtype: (name) => g.initializers.get(name)?.dtype ?? known.get(name)?.dtype,
    constant,
    ints: (name) => {
      const t = constant(name);
      if (!t || !/^u?int(8|16|32|64)$/.test(t.dtype)) return undefined;
      return Array.from(t.data as ArrayLike<number | bigint>, Number);
    },
    uses: (name) => uses.get(name) ?? 0,
    addConst: (base, t) => {
      const name = g.uniqueName(base);
      g.initializers.set(name, t);
      return name;
    },
    insert: (opType, inputs, attrs = {}, base = opType) => {
      const name = g.uniqueName(base);
      const output = g.uniqueName(`${name}_out`);
      out.push({ name, opType, domain: "", inputs, outputs: [output], attrs });
      for (const i of inputs) if (i) uses.set(i, (uses.get(i) ?? 0) + 1);
      return output;
    },
    fail: (n, message) => {
      throw new OnnxError(`${n.opType} (opset ${from}): ${message}`, { node: n.name || n.outputs[0] });
    },
  };
}

export const i64vec = (v: number[]): Tensor => ({
  dtype: "int64",
  dims: [v.length],
  data: BigInt64Array.from(v, BigInt),
});
export const i64scalar = (v: number): Tensor => ({
  dtype: "int64",
  dims: [],
  data: BigInt64Array.of(BigInt(v)),
});
