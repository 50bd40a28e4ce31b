import { bitsPerElement, type DType, isFloat } from "./dtype.js";
import { type Dim, type Graph, type Model, type Node, subgraphs } from "./ir.js";
import { numel, type Tensor } from "./tensor.js";

/** A graph input or output as `qat inspect` shows it. */
export interface IoSummary {
  name: string;
  /** The element type; "sequence", "map", "optional" or "?" for other or unknown types. */
  dtype: string;
  /** Undefined when the rank is unknown. */
  shape?: Dim[];
}

/** Constant tensors of one element type. */
export interface TensorGroup {
  dtype: DType;
  tensors: number;
  elements: number;
  bytes: number;
}

export interface TensorTotals {
  tensors: number;
  elements: number;
  bytes: number;
  byDtype: TensorGroup[];
}

export interface ModelSummary {
  producer: { name: string; version: string };
  irVersion: number;
  /** Opset per domain, "" being ai.onnx. */
  opsets: Record<string, number>;
  inputs: IoSummary[];
  outputs: IoSummary[];
  /** Op type → count over the graph and its subgraphs, most frequent first; other domains as "domain:Op". */
  ops: Record<string, number>;
  nodes: number;
  /** Subgraphs (If branches, Loop/Scan bodies) counted into `ops`, `nodes` and the tensors. */
  subgraphs: number;
  /** Floating-point initializers and Constant-node tensors: the weights. */
  parameters: TensorTotals;
  /** Other constants (int64 shapes, axes, indices ...), listed apart from the parameters. */
  constants: TensorTotals;
  /** Nodes the `trainable` predicate rejects, when one was given. */
  untrainable?: { name: string; op: string }[];
}

export interface SummaryOptions {
  /** Whether gradients can flow through a node; the nodes it rejects are listed. */
  trainable?: (node: Node) => boolean;
}

/** Qualified op name: "Conv" for ai.onnx, "com.microsoft:FusedConv" for other domains. */
export const opKey = (n: Node): string =>
  n.domain && n.domain !== "ai.onnx" ? `${n.domain}:${n.opType}` : n.opType;

export function summarize(model: Model, opts: SummaryOptions = {}): ModelSummary {
  const g = model.graph;
  const ops = new Map<string, number>();
  const params = new Map<DType, TensorGroup>();
  const consts = new Map<DType, TensorGroup>();
  const untrainable: { name: string; op: string }[] = [];
  let nodes = 0;
  let subgraphCount = 0;

  const addTensor = (t: Tensor) => {
    const into = isFloat(t.dtype) ? params : consts;
    let group = into.get(t.dtype);
    if (!group) {
      group = { dtype: t.dtype, tensors: 0, elements: 0, bytes: 0 };
      into.set(t.dtype, group);
    }
    const n = numel(t.dims);
    group.tensors++;
    group.elements += n;
    group.bytes += tensorBytes(t, n);
  };

  const visit = (graph: Graph) => {
    for (const t of graph.initializers.values()) addTensor(t);
    for (const node of graph.nodes) {
      nodes++;
      const key = opKey(node);
      ops.set(key, (ops.get(key) ?? 0) + 1);
      if (node.opType === "Constant" && !node.domain) {
        for (const t of constantTensors(node)) addTensor(t);
      }
      if (opts.trainable && !opts.trainable(node)) untrainable.push({ name: node.name, op: key });
      for (const sg of subgraphs(node)) {
        subgraphCount++;
        visit(sg);
      }
    }
  };
  visit(g);

  const initialized = new Set(g.initializers.keys());
  const summary: ModelSummary = {
    producer: { name: model.producerName, version: model.producerVersion },
    irVersion: model.irVersion,
    opsets: { ...model.opsets },
    // IR < 4 models list every initializer as an input too: those are weights, not inputs a user feeds
    inputs: g.inputs.filter((v) => !initialized.has(v.name)).map(ioOf),
    outputs: g.outputs.map(ioOf),
    ops: Object.fromEntries([...ops].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
    nodes,
    subgraphs: subgraphCount,
    parameters: totals(params),
    constants: totals(consts),
  };
  if (opts.trainable) summary.untrainable = untrainable;
  return summary;
}

/** The tensors a Constant node holds: `value`, or the value_float(s)/value_int(s) forms of opset 12+. */
function constantTensors(node: Node): Tensor[] {
  const out: Tensor[] = [];
  for (const [k, a] of Object.entries(node.attrs)) {
    if (a.type === "tensor") out.push(a.value);
    else if (k === "value_float" && a.type === "float")
      out.push({ dtype: "float32", dims: [], data: Float32Array.of(a.value) });
    else if (k === "value_floats" && a.type === "floats") {
      out.push({ dtype: "float32", dims: [a.value.length], data: Float32Array.from(a.value) });
    } else if (k === "value_int" && a.type === "int") {
      out.push({ dtype: "int64", dims: [], data: BigInt64Array.of(BigInt(a.value)) });
    } else if (k === "value_ints" && a.type === "ints") {
      out.push({ dtype: "int64", dims: [a.value.length], data: BigInt64Array.from(a.value, BigInt) });
    }
  }
  return out;
}

function tensorBytes(t: Tensor, n: number): number {
  if (t.dtype === "string") return (t.data as Uint8Array[]).reduce((s, b) => s + b.length, 0);
  return Math.ceil((n * bitsPerElement(t.dtype)) / 8);
}

function totals(groups: Map<DType, TensorGroup>): TensorTotals {
  const byDtype = [...groups.values()].sort((a, b) => b.bytes - a.bytes || a.dtype.localeCompare(b.dtype));
  return {
    tensors: byDtype.reduce((s, x) => s + x.tensors, 0),
    elements: byDtype.reduce((s, x) => s + x.elements, 0),
    bytes: byDtype.reduce((s, x) => s + x.bytes, 0),
    byDtype,
  };
}

function ioOf(v: { name: string; dtype?: DType; shape?: Dim[]; rawType?: unknown }): IoSummary {
  const io: IoSummary = { name: v.name, dtype: v.dtype ?? kindOf(v.rawType) };
  if (v.shape) io.shape = [...v.shape];
  return io;
}

function kindOf(raw: unknown): string {
  const t = raw as Record<string, unknown> | undefined;
  if (t?.sequence_type) return "sequence";
  if (t?.map_type) return "map";
  if (t?.optional_type) return "optional";
  if (t?.sparse_tensor_type) return "sparse tensor";
  return "?";
}

// ---------------------------------------------------------------- human-readable form

const thousands = (n: number): string => n.toLocaleString("en-US");
const count = (n: number, noun: string): string => `${thousands(n)} ${noun}${n === 1 ? "" : "s"}`;

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(2)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

const shapeText = (s?: Dim[]): string =>
  s ? `[${s.map((d) => (d === null ? "?" : String(d))).join(", ")}]` : "(rank unknown)";

/** Rows padded into columns; `right` lists the columns aligned to the right (numbers). */
function table(rows: string[][], right: number[] = [], indent = "  "): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    for (let i = 0; i < r.length; i++) widths[i] = Math.max(widths[i] ?? 0, r[i]!.length);
  }
  return rows.map(
    (r) =>
      indent +
      r
        .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
  );
}

function tensorSection(title: string, t: TensorTotals): string[] {
  const head = `${title}: ${thousands(t.elements)} in ${count(t.tensors, "tensor")}, ${size(t.bytes)}`;
  if (t.tensors === 0) return [`${title}: none`];
  const rows = t.byDtype.map((g) => [
    g.dtype,
    thousands(g.elements),
    count(g.tensors, "tensor"),
    size(g.bytes),
  ]);
  return [head, ...table(rows, [1, 2, 3])];
}

export function formatSummary(s: ModelSummary): string {
  const opsets = Object.entries(s.opsets)
    .map(([d, v]) => `${d || "ai.onnx"} ${v}`)
    .join(", ");
  const producer = [s.producer.name || "(unknown)", s.producer.version].filter(Boolean).join(" ");
  const io = (list: IoSummary[]) => table(list.map((v) => [v.name, v.dtype, shapeText(v.shape)]));
  const lines = [
    ...table(
      [
        ["producer", producer],
        ["IR version", String(s.irVersion)],
        ["opsets", opsets],
      ],
      [],
      "",
    ),
    "",
    `inputs (${s.inputs.length})`,
    ...io(s.inputs),
    `outputs (${s.outputs.length})`,
    ...io(s.outputs),
    "",
    ...tensorSection("parameters", s.parameters),
    ...tensorSection("other constants", s.constants),
    "",
    `ops: ${thousands(s.nodes)} nodes${s.subgraphs ? ` (with ${s.subgraphs} subgraphs)` : ""}`,
    ...table(
      Object.entries(s.ops).map(([op, n]) => [op, thousands(n)]),
      [1],
    ),
  ];
  if (s.untrainable) {
    lines.push("");
    if (s.untrainable.length === 0) lines.push("every node can be trained through");
    else {
      lines.push(`cannot train through (${count(s.untrainable.length, "node")})`);
      lines.push(...table(s.untrainable.map((u) => [u.name, u.op])));
    }
  }
  return lines.join("\n");
}
