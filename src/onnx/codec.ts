/**
 * ModelProto ⇄ Model: the decoder checks the wire format first (wire.ts), then turns every graph, node, attribute
 * and value info into the IR, keeping what qat does not interpret in `extra` so that encoding writes it back.
 * Tensors are in tensor-codec.ts, the compiled schema and message helpers in proto.ts.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Long from "long";
import { DTYPE_CODE, dtypeFromCode } from "./dtype.js";
import { OnnxError } from "./errors.js";
import { type Attr, type Dim, Graph, type Model, type Node, type ValueInfo } from "./ir.js";
import { ATTR_NAME, AttrType, has, ModelProto, type Msg, num, root, setOwn, str } from "./proto.js";
import { type DecodeContext as Ctx, decodeTensor, encodeTensor } from "./tensor-codec.js";
import { checkWire } from "./wire.js";

export interface DecodeOptions {
  /** The model's path: names it in errors and locates external data files. */
  path?: string;
  /** Widen float16/bfloat16 initializers and constants to float32. */
  widenHalf?: boolean;
}

/**
 * Encode a plain object as any message of the ONNX schema ("onnx.ModelProto", "onnx.TensorProto", ...). Low level:
 * for tests and tools that need protobuf fields the IR never writes (float_data, int64_data, external_data ...).
 */
export function encodeMessage(type: string, fields: Record<string, unknown>): Uint8Array {
  const t = root.lookupType(type);
  return t.encode(t.fromObject(fields)).finish();
}

/** Read a model file. Raises OnnxError for anything that is not a well-formed ONNX model. */
export function loadModel(path: string, opts: Omit<DecodeOptions, "path"> = {}): Model {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new OnnxError(`cannot read the model: ${(e as Error).message}`, { file: path });
  }
  return decodeModel(bytes, { ...opts, path });
}

export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  if (!(bytes instanceof Uint8Array))
    throw new OnnxError("decodeModel needs the file's bytes (a Uint8Array)");
  if (bytes.length === 0) throw new OnnxError("the file is empty", { file: opts.path });
  // the wire check makes protobufjs safe: after it, decode cannot read out of bounds or recurse without limit
  checkWire(bytes, ModelProto, opts.path);
  let m: Msg;
  try {
    m = ModelProto.decode(bytes);
  } catch (e) {
    const msg = (e as Error).message;
    const at = /(?:offset|range:) (\d+)/.exec(msg);
    throw new OnnxError(`not a valid ONNX protobuf (${msg})`, {
      file: opts.path,
      offset: at ? Number(at[1]) : undefined,
    });
  }
  const ctx: Ctx = {
    file: opts.path,
    dir: opts.path ? dirname(resolve(opts.path)) : undefined,
    widen: !!opts.widenHalf,
  };
  if (!has(m, "graph")) throw new OnnxError("the model has no graph", { file: opts.path });
  const irVersion = num(m.ir_version);
  if (!Number.isSafeInteger(irVersion) || irVersion < 0) {
    throw new OnnxError(`invalid ir_version ${m.ir_version}`, { file: opts.path });
  }
  const opsets: Record<string, number> = {};
  for (const o of m.opset_import) {
    const version = num(o.version);
    if (!Number.isSafeInteger(version) || version < 0) {
      throw new OnnxError(`invalid opset version ${o.version} for domain '${o.domain ?? ""}'`, {
        file: opts.path,
      });
    }
    setOwn(opsets, o.domain ?? "", version);
  }
  if (m.opset_import.length === 0) opsets[""] = 1; // IR < 3 models imply opset 1
  const extra: Record<string, unknown> = {};
  if (m.training_info.length) extra.training_info = m.training_info;
  if (m.functions.length) extra.functions = m.functions;
  return {
    irVersion,
    opsets,
    producerName: m.producer_name ?? "",
    producerVersion: m.producer_version ?? "",
    domain: m.domain ?? "",
    modelVersion: num(m.model_version),
    doc: m.doc_string ?? "",
    metadata: Object.fromEntries(m.metadata_props.map((e: Msg) => [e.key, e.value])),
    graph: decodeGraph(m.graph, ctx, 0),
    extra,
  };
}

const MAX_DEPTH = 64;

function decodeGraph(g: Msg, ctx: Ctx, depth: number): Graph {
  if (depth > MAX_DEPTH) throw new OnnxError(`subgraphs nested deeper than ${MAX_DEPTH}`, { file: ctx.file });
  const graph = new Graph();
  graph.name = g.name ?? "";
  if (has(g, "doc_string")) graph.doc = g.doc_string;
  for (const t of g.initializer) {
    const name = t.name ?? "";
    if (!name) throw new OnnxError("an initializer has no name", { file: ctx.file });
    if (graph.initializers.has(name))
      throw new OnnxError(`two initializers are named '${name}'`, { file: ctx.file });
    graph.initializers.set(name, decodeTensor(t, ctx, name));
  }
  graph.inputs = g.input.map((v: Msg) => decodeValueInfo(v));
  graph.outputs = g.output.map((v: Msg) => decodeValueInfo(v));
  for (const v of g.value_info) graph.valueInfo.set(v.name, decodeValueInfo(v));
  for (const key of ["sparse_initializer", "quantization_annotation", "metadata_props"]) {
    if (g[key].length) graph.extra[key] = g[key];
  }
  graph.nodes = g.node.map((n: Msg, i: number) => decodeNode(n, i, ctx, depth));
  return graph;
}

function decodeNode(n: Msg, index: number, ctx: Ctx, depth: number): Node {
  const name = n.name || `${n.op_type || "node"}_${index}`;
  if (!n.op_type) throw new OnnxError(`node #${index} has no op_type`, { file: ctx.file, node: name });
  const node: Node = {
    name,
    opType: n.op_type,
    domain: n.domain === "ai.onnx" ? "" : (n.domain ?? ""),
    inputs: [...n.input],
    outputs: [...n.output],
    attrs: {},
  };
  if (has(n, "doc_string")) node.doc = n.doc_string;
  if (has(n, "overload") || n.metadata_props.length) {
    node.extra = { overload: has(n, "overload") ? n.overload : undefined, metadata_props: n.metadata_props };
  }
  if (!n.name) node.extra = { ...node.extra, unnamed: true };
  for (const a of n.attribute) {
    if (!a.name) throw new OnnxError("an attribute has no name", { file: ctx.file, node: name });
    if (Object.hasOwn(node.attrs, a.name)) {
      throw new OnnxError(`attribute '${a.name}' appears twice`, { file: ctx.file, node: name });
    }
    setOwn(node.attrs, a.name, decodeAttr(a, ctx, depth, name));
  }
  return node;
}

function attrKind(a: Msg): string {
  if (has(a, "type") && a.type !== 0) return ATTR_NAME[a.type] ?? `unknown type ${a.type}`;
  // IR version 1 files have no type field: infer it from the field that is set
  for (const [field, kind] of [
    ["f", "float"],
    ["i", "int"],
    ["s", "string"],
    ["t", "tensor"],
    ["g", "graph"],
    ["floats", "floats"],
    ["ints", "ints"],
    ["strings", "strings"],
    ["tensors", "tensors"],
    ["graphs", "graphs"],
    ["sparse_tensor", "sparse_tensor"],
    ["tp", "type_proto"],
    ["sparse_tensors", "sparse_tensors"],
    ["type_protos", "type_protos"],
  ] as const) {
    if (Array.isArray(a[field]) ? a[field].length > 0 : has(a, field)) return kind;
  }
  return "undefined";
}

function decodeAttr(a: Msg, ctx: Ctx, depth: number, node: string): Attr {
  if (a.ref_attr_name) return { type: "raw", proto: a };
  const kind = attrKind(a);
  const missing = (field: string) =>
    new OnnxError(`attribute '${a.name}' is of type ${kind} but its field '${field}' is not set`, {
      file: ctx.file,
      node,
    });
  switch (kind) {
    case "float":
      return { type: "float", value: a.f ?? 0 };
    case "int":
      return { type: "int", value: num(a.i) };
    case "string":
      return { type: "string", value: has(a, "s") ? str(a.s) : "" };
    case "tensor":
      if (!a.t) throw missing("t");
      return { type: "tensor", value: decodeTensor(a.t, ctx, `${node}.${a.name}`) };
    case "graph":
      if (!a.g) throw missing("g");
      return { type: "graph", value: decodeGraph(a.g, ctx, depth + 1) };
    case "floats":
      return { type: "floats", value: [...a.floats] };
    case "ints":
      return { type: "ints", value: a.ints.map(num) };
    case "strings":
      return { type: "strings", value: a.strings.map(str) };
    case "tensors":
      return { type: "tensors", value: a.tensors.map((t: Msg) => decodeTensor(t, ctx, `${node}.${a.name}`)) };
    case "graphs":
      return { type: "graphs", value: a.graphs.map((g: Msg) => decodeGraph(g, ctx, depth + 1)) };
    case "undefined":
      throw new OnnxError(`attribute '${a.name}' has no value`, { file: ctx.file, node });
    case "sparse_tensor":
    case "type_proto":
    case "sparse_tensors":
    case "type_protos":
      return { type: "raw", proto: a };
    default:
      throw new OnnxError(`attribute '${a.name}' has an ${kind}`, { file: ctx.file, node });
  }
}

function decodeValueInfo(v: Msg): ValueInfo {
  const info: ValueInfo = { name: v.name ?? "" };
  if (has(v, "doc_string")) info.doc = v.doc_string;
  const t = v.type;
  if (!t) return info;
  if (has(t, "tensor_type")) {
    const tt = t.tensor_type;
    if (has(tt, "elem_type")) {
      info.dtype = dtypeFromCode(tt.elem_type);
      if (info.dtype === undefined) info.rawType = t; // an element type newer than our schema: keep it as written
    }
    if (has(tt, "shape")) {
      info.shape = tt.shape.dim.map((d: Msg): Dim => {
        if (has(d, "dim_value")) {
          // some exporters write -1 for "unknown"; read that (and absurd sizes) as an unknown dimension
          const v = num(d.dim_value);
          return Number.isSafeInteger(v) && v >= 0 ? v : null;
        }
        if (has(d, "dim_param") && d.dim_param) return d.dim_param;
        return null;
      });
    }
    if (has(t, "denotation") || tt.shape?.dim.some((d: Msg) => has(d, "denotation"))) info.rawType ??= t;
  } else info.rawType = t;
  return info;
}

// ---------------------------------------------------------------- encoding

export function encodeModel(model: Model): Uint8Array {
  const m: Msg = {
    ir_version: model.irVersion,
    opset_import: Object.entries(model.opsets).map(([domain, version]) => ({ domain, version })),
    producer_name: model.producerName,
    producer_version: model.producerVersion,
    domain: model.domain,
    model_version: model.modelVersion,
    doc_string: model.doc,
    graph: encodeGraph(model.graph),
    metadata_props: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
  };
  if (model.extra.training_info) m.training_info = model.extra.training_info;
  if (model.extra.functions) m.functions = model.extra.functions;
  for (const k of ["producer_name", "producer_version", "domain", "doc_string"]) if (!m[k]) delete m[k];
  if (!m.model_version) delete m.model_version;
  // plain objects go straight to encode: fromObject would first turn every int64 into a Long object
  return ModelProto.encode(m).finish();
}

function encodeGraph(g: Graph): Msg {
  const out: Msg = {
    name: g.name,
    node: g.nodes.map(encodeNode),
    initializer: [...g.initializers].map(([name, t]) => encodeTensor(t, name)),
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
    value_info: [...g.valueInfo.values()].map(encodeValueInfo),
    ...g.extra,
  };
  if (g.doc !== undefined) out.doc_string = g.doc;
  return out;
}

function encodeNode(n: Node): Msg {
  const out: Msg = {
    input: n.inputs,
    output: n.outputs,
    op_type: n.opType,
    attribute: Object.entries(n.attrs).map(([name, a]) => encodeAttr(name, a)),
  };
  if (!n.extra?.unnamed) out.name = n.name;
  if (n.domain) out.domain = n.domain;
  if (n.doc !== undefined) out.doc_string = n.doc;
  if (n.extra?.overload !== undefined) out.overload = n.extra.overload;
  if (n.extra?.metadata_props) out.metadata_props = n.extra.metadata_props;
  return out;
}

/** An int64 field value: a number when exact, else a saturated Long (INT64_MAX decodes to 2^63 as a number). */
const int64 = (v: number): number | Long => (Math.abs(v) < 2 ** 63 ? v : Long.fromNumber(v));

function encodeAttr(name: string, a: Attr): Msg {
  const enc = new TextEncoder();
  switch (a.type) {
    case "raw":
      return a.proto;
    case "float":
      return { name, type: AttrType.FLOAT, f: a.value };
    case "int":
      return { name, type: AttrType.INT, i: int64(a.value) };
    case "string":
      return { name, type: AttrType.STRING, s: enc.encode(a.value) };
    case "tensor":
      return { name, type: AttrType.TENSOR, t: encodeTensor(a.value) };
    case "graph":
      return { name, type: AttrType.GRAPH, g: encodeGraph(a.value) };
    case "floats":
      return { name, type: AttrType.FLOATS, floats: a.value };
    case "ints":
      return { name, type: AttrType.INTS, ints: a.value.map(int64) };
    case "strings":
      return { name, type: AttrType.STRINGS, strings: a.value.map((s) => enc.encode(s)) };
    case "tensors":
      return { name, type: AttrType.TENSORS, tensors: a.value.map((t) => encodeTensor(t)) };
    case "graphs":
      return { name, type: AttrType.GRAPHS, graphs: a.value.map(encodeGraph) };
  }
}

function encodeValueInfo(v: ValueInfo): Msg {
  const out: Msg = { name: v.name };
  if (v.doc !== undefined) out.doc_string = v.doc;
  if (v.rawType && (v.dtype === undefined || !v.rawType || !("tensor_type" in (v.rawType as object)))) {
    out.type = v.rawType;
  } else if (v.dtype !== undefined || v.shape !== undefined) {
    const tt: Msg = {};
    if (v.dtype !== undefined) tt.elem_type = DTYPE_CODE[v.dtype];
    if (v.shape) {
      tt.shape = {
        dim: v.shape.map((d) =>
          typeof d === "number" ? { dim_value: d } : typeof d === "string" ? { dim_param: d } : {},
        ),
      };
    }
    out.type = { tensor_type: tt };
    const raw = v.rawType as Msg;
    if (raw?.denotation) out.type.denotation = raw.denotation;
    // dimension denotations ("DATA_BATCH", ...) from the file, kept while the rank is unchanged
    const rawDims: Msg[] = raw?.tensor_type?.shape?.dim ?? [];
    if (tt.shape && rawDims.length === tt.shape.dim.length) {
      for (let i = 0; i < rawDims.length; i++) {
        if (rawDims[i].denotation) tt.shape.dim[i].denotation = rawDims[i].denotation;
      }
    }
  }
  return out;
}

/**
 * A fresh model around a graph, at qat's working opset. Domains the graph's nodes use (com.microsoft contrib ops
 * in training steps) are imported at version 1 unless `opsets` names them.
 */
export function modelOf(graph: Graph, opsets: Record<string, number> = { "": 17 }, producer = "qat"): Model {
  const used = new Set(graph.nodes.map((n) => n.domain).filter((d) => d && !(d in opsets)));
  return {
    irVersion: 8,
    opsets: used.size ? { ...opsets, ...Object.fromEntries([...used].map((d) => [d, 1])) } : opsets,
    producerName: producer,
    producerVersion: "0.1.0",
    domain: "",
    modelVersion: 0,
    doc: "",
    metadata: {},
    graph,
    extra: {},
  };
}
