import type { DType } from "./dtype.js";
import type { Tensor } from "./tensor.js";

/** A dimension: a size, a symbolic name such as "batch", or null when unknown. */
export type Dim = number | string | null;

/** What is known of a value: its element type and shape (undefined shape = unknown rank). */
export interface ValueInfo {
  name: string;
  dtype?: DType;
  shape?: Dim[];
  doc?: string;
  /** A non-tensor TypeProto (sequence, map, optional), kept as decoded so it is written back unchanged. */
  rawType?: unknown;
}

export type Attr =
  | { type: "float"; value: number }
  | { type: "int"; value: number }
  | { type: "string"; value: string }
  | { type: "tensor"; value: Tensor }
  | { type: "graph"; value: Graph }
  | { type: "floats"; value: number[] }
  | { type: "ints"; value: number[] }
  | { type: "strings"; value: string[] }
  | { type: "tensors"; value: Tensor[] }
  | { type: "graphs"; value: Graph[] }
  /** Attributes qat does not interpret (sparse tensors, type protos, function references), kept as decoded. */
  | { type: "raw"; proto: unknown };

export interface Node {
  name: string;
  opType: string;
  /** "" is the default ai.onnx domain. */
  domain: string;
  /** "" marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
  doc?: string;
  /** Fields qat does not interpret (overload, metadata_props), kept as decoded. */
  extra?: Record<string, unknown>;
}

export class Graph {
  name = "";
  nodes: Node[] = [];
  inputs: ValueInfo[] = [];
  outputs: ValueInfo[] = [];
  initializers = new Map<string, Tensor>();
  /** Intermediate values' types and shapes: from the file and from shape inference. */
  valueInfo = new Map<string, ValueInfo>();
  doc?: string;
  /** Fields qat does not interpret (sparse initializers, quantization annotations, metadata), kept as decoded. */
  extra: Record<string, unknown> = {};

  private used?: Set<string>;
  private counter = 0;

  /** A name used by no value, node or initializer of this graph (nor of its subgraphs). */
  uniqueName(base: string): string {
    if (!this.used) this.used = collectNames(this);
    let name = base;
    while (this.used.has(name)) name = `${base}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  /** Forget cached names after editing nodes by hand. */
  invalidate(): void {
    this.used = undefined;
  }

  /** Append a node; outputs are a count (fresh names from the op type) or explicit names. Returns the output names. */
  add(
    opType: string,
    inputs: string[],
    attrs: Record<string, Attr | AttrInput> = {},
    opts: { outputs?: number | string[]; name?: string; domain?: string } = {},
  ): string[] {
    const name = this.uniqueName(opts.name ?? opType);
    const outs = opts.outputs ?? 1;
    const outputs =
      typeof outs === "number"
        ? Array.from({ length: outs }, (_, i) => this.uniqueName(`${name}_out${i}`))
        : outs;
    if (typeof outs !== "number") for (const o of outs) this.used?.add(o);
    this.nodes.push({ name, opType, domain: opts.domain ?? "", inputs, outputs, attrs: toAttrs(attrs) });
    return outputs;
  }

  /** Append a node with one output and return its name. */
  op(
    opType: string,
    inputs: string[],
    attrs: Record<string, Attr | AttrInput> = {},
    opts: { name?: string; domain?: string; output?: string } = {},
  ): string {
    return this.add(opType, inputs, attrs, { ...opts, outputs: opts.output ? [opts.output] : 1 })[0]!;
  }

  /** Add an initializer under a fresh name derived from `base` and return the name. */
  constant(base: string, t: Tensor): string {
    const name = this.uniqueName(base);
    this.initializers.set(name, t);
    return name;
  }

  /** The node producing each value. */
  producers(): Map<string, Node> {
    const m = new Map<string, Node>();
    for (const n of this.nodes) for (const o of n.outputs) if (o) m.set(o, n);
    return m;
  }

  /** The nodes consuming each value (a node appears once per use). */
  consumers(): Map<string, Node[]> {
    const m = new Map<string, Node[]>();
    for (const n of this.nodes) {
      for (const i of nodeDependencies(n)) {
        let list = m.get(i);
        if (!list) m.set(i, (list = []));
        list.push(n);
      }
    }
    return m;
  }
}

export interface Model {
  irVersion: number;
  /** Opset version per domain ("" = ai.onnx). */
  opsets: Record<string, number>;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  doc: string;
  metadata: Record<string, string>;
  graph: Graph;
  /** Fields qat does not interpret (training_info, functions), kept as decoded. */
  extra: Record<string, unknown>;
}

/** Plain values accepted where an attribute is expected: integers become "int", other numbers "float". */
export type AttrInput = number | string | number[] | string[] | Tensor | Graph;

export const attr = {
  float: (value: number): Attr => ({ type: "float", value }),
  int: (value: number): Attr => ({ type: "int", value }),
  floats: (value: number[]): Attr => ({ type: "floats", value }),
  ints: (value: number[]): Attr => ({ type: "ints", value }),
  string: (value: string): Attr => ({ type: "string", value }),
  tensor: (value: Tensor): Attr => ({ type: "tensor", value }),
};

function isAttr(v: unknown): v is Attr {
  return (
    typeof v === "object" && v !== null && "type" in v && ("value" in v || "proto" in v) && !("dims" in v)
  );
}

function toAttrs(input: Record<string, Attr | AttrInput>): Record<string, Attr> {
  const out: Record<string, Attr> = {};
  for (const [k, v] of Object.entries(input)) {
    if (isAttr(v)) out[k] = v;
    else if (typeof v === "number") out[k] = Number.isInteger(v) ? attr.int(v) : attr.float(v);
    else if (typeof v === "string") out[k] = attr.string(v);
    else if (v instanceof Graph) out[k] = { type: "graph", value: v };
    else if (Array.isArray(v)) {
      if (v.every((x) => typeof x === "string")) out[k] = { type: "strings", value: v as string[] };
      else
        out[k] = (v as number[]).every(Number.isInteger)
          ? attr.ints(v as number[])
          : attr.floats(v as number[]);
    } else out[k] = attr.tensor(v);
  }
  return out;
}

/** Attribute readers with defaults; a wrong attribute type throws naming the node. */
export function getAttr<T extends Attr["type"]>(
  node: Node,
  name: string,
  type: T,
): Extract<Attr, { type: T }> | undefined {
  const a = node.attrs[name];
  if (!a) return undefined;
  if (a.type !== type)
    throw new Error(
      `node '${node.name}' (${node.opType}): attribute '${name}' is ${a.type}, expected ${type}`,
    );
  return a as Extract<Attr, { type: T }>;
}
export const attrInt = (n: Node, k: string, d: number): number => getAttr(n, k, "int")?.value ?? d;
export const attrFloat = (n: Node, k: string, d: number): number => getAttr(n, k, "float")?.value ?? d;
export const attrString = (n: Node, k: string, d: string): string => getAttr(n, k, "string")?.value ?? d;
export function attrInts(n: Node, k: string): number[] | undefined;
export function attrInts(n: Node, k: string, d: number[]): number[];
export function attrInts(n: Node, k: string, d?: number[]): number[] | undefined {
  return getAttr(n, k, "ints")?.value ?? d;
}

/** Subgraphs held in a node's attributes (If branches, Loop/Scan bodies). */
export function subgraphs(node: Node): Graph[] {
  const out: Graph[] = [];
  for (const a of Object.values(node.attrs)) {
    if (a.type === "graph") out.push(a.value);
    else if (a.type === "graphs") out.push(...a.value);
  }
  return out;
}

/** Names a subgraph reads from enclosing scopes. */
export function outerReferences(g: Graph): Set<string> {
  const defined = new Set<string>([...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  const refs = new Set<string>();
  for (const n of g.nodes) {
    for (const i of nodeDependencies(n)) if (i && !defined.has(i)) refs.add(i);
    for (const o of n.outputs) defined.add(o);
  }
  return refs;
}

/** The values a node needs before it can run: its inputs and what its subgraphs read from outside. */
export function nodeDependencies(node: Node): string[] {
  const deps = node.inputs.filter((i) => i !== "");
  for (const sg of subgraphs(node)) deps.push(...outerReferences(sg));
  return deps;
}

function collectNames(g: Graph, into = new Set<string>()): Set<string> {
  for (const v of [...g.inputs, ...g.outputs]) into.add(v.name);
  for (const k of g.initializers.keys()) into.add(k);
  for (const k of g.valueInfo.keys()) into.add(k);
  for (const n of g.nodes) {
    into.add(n.name);
    for (const i of n.inputs) into.add(i);
    for (const o of n.outputs) into.add(o);
    for (const sg of subgraphs(n)) collectNames(sg, into);
  }
  return into;
}

/**
 * Nodes in an order where every value is produced before it is used, keeping the file's order where it already
 * is one. A cycle or a value nobody produces throws, naming the node.
 */
export function topologicalOrder(g: Graph, outer: ReadonlySet<string> = new Set()): Node[] {
  const available = new Set<string>([...outer, ...g.inputs.map((v) => v.name), ...g.initializers.keys(), ""]);
  const producers = g.producers();
  const pending = new Map<Node, number>();
  const waiting = new Map<string, Node[]>();
  const ready: Node[] = [];
  for (const n of g.nodes) {
    let missing = 0;
    for (const d of new Set(nodeDependencies(n))) {
      if (available.has(d)) continue;
      if (!producers.has(d))
        throw new Error(
          `node '${n.name}' (${n.opType}) reads '${d}', which no node, input or initializer provides`,
        );
      missing++;
      let w = waiting.get(d);
      if (!w) waiting.set(d, (w = []));
      w.push(n);
    }
    pending.set(n, missing);
    if (missing === 0) ready.push(n);
  }
  const index = new Map(g.nodes.map((n, i) => [n, i]));
  const order: Node[] = [];
  // a min-heap by original index would be O(n log n); graphs here are small enough for a sorted ready list
  while (ready.length > 0) {
    ready.sort((a, b) => index.get(b)! - index.get(a)!);
    const n = ready.pop()!;
    order.push(n);
    for (const o of n.outputs) {
      for (const m of waiting.get(o) ?? []) {
        const left = pending.get(m)! - 1;
        pending.set(m, left);
        if (left === 0) ready.push(m);
      }
      waiting.delete(o);
    }
  }
  if (order.length !== g.nodes.length) {
    const stuck = g.nodes.find((n) => pending.get(n)! > 0)!;
    throw new Error(`graph '${g.name}' has a cycle through node '${stuck.name}' (${stuck.opType})`);
  }
  return order;
}

/** Sort a graph's nodes in place into topological order. */
export function sortGraph(g: Graph): void {
  g.nodes = topologicalOrder(g);
}

export function cloneGraph(g: Graph): Graph {
  const c = new Graph();
  c.name = g.name;
  c.doc = g.doc;
  c.nodes = g.nodes.map((n) => ({
    ...n,
    inputs: [...n.inputs],
    outputs: [...n.outputs],
    attrs: { ...n.attrs },
  }));
  c.inputs = g.inputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] }));
  c.outputs = g.outputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] }));
  c.initializers = new Map(g.initializers);
  c.valueInfo = new Map(g.valueInfo);
  c.extra = { ...g.extra };
  return c;
}
