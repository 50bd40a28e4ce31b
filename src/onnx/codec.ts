import { readFileSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import Long from "long";
import protobuf from "protobufjs";
import { bitsPerElement, DTYPE_CODE, type DType, dtypeFromCode, halfToFloat, STORAGE } from "./dtype.js";
import { OnnxError } from "./errors.js";
import { type Attr, type Dim, Graph, type Model, type Node, type ValueInfo } from "./ir.js";
import { ONNX_PROTO } from "./schema.js";
import { numel, type Tensor } from "./tensor.js";

protobuf.util.Long = Long;
protobuf.configure();
const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
const ModelProto = root.lookupType("onnx.ModelProto");
const AttrType = root.lookupEnum("onnx.AttributeProto.AttributeType").values;
const ATTR_NAME = Object.fromEntries(Object.entries(AttrType).map(([k, v]) => [v, k.toLowerCase()]));

/** Largest tensor the decoder will materialise from a file (elements). Bigger claims are refused, not allocated. */
const MAX_ELEMENTS = 2 ** 31;

// biome-ignore lint/suspicious/noExplicitAny: decoded protobuf messages are untyped
type Msg = any;

export interface DecodeOptions {
  /** The model's path: names it in errors and locates external data files. */
  path?: string;
  /** Widen float16/bfloat16 initializers and constants to float32. */
  widenHalf?: boolean;
}

const has = (m: Msg, k: string): boolean => m != null && Object.hasOwn(m, k);
const num = (v: unknown): number => (Long.isLong(v) ? (v as Long).toNumber() : Number(v ?? 0));
const utf8 = new TextDecoder();
const str = (b: Uint8Array): string => utf8.decode(b);

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
  const ctx: Ctx = { file: opts.path, dir: opts.path ? dirname(resolve(opts.path)) : undefined, widen: !!opts.widenHalf };
  if (!has(m, "graph")) throw new OnnxError("the model has no graph", { file: opts.path });
  const opsets: Record<string, number> = {};
  for (const o of m.opset_import) opsets[o.domain ?? ""] = num(o.version);
  if (m.opset_import.length === 0) opsets[""] = 1; // IR < 3 models imply opset 1
  const extra: Record<string, unknown> = {};
  if (m.training_info.length) extra.training_info = m.training_info;
  if (m.functions.length) extra.functions = m.functions;
  return {
    irVersion: num(m.ir_version),
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

interface Ctx {
  file?: string;
  dir?: string;
  widen: boolean;
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
    node.extra = { overload: n.overload, metadata_props: n.metadata_props };
  }
  if (!n.name) node.extra = { ...node.extra, unnamed: true };
  for (const a of n.attribute) {
    if (!a.name) throw new OnnxError("an attribute has no name", { file: ctx.file, node: name });
    node.attrs[a.name] = decodeAttr(a, ctx, depth, name);
  }
  return node;
}

function attrKind(a: Msg): string {
  if (has(a, "type") && a.type !== 0) return ATTR_NAME[a.type] ?? "undefined";
  // IR version 1 files have no type field: infer it from the field that is set
  for (const [field, kind] of [
    ["f", "float"], ["i", "int"], ["s", "string"], ["t", "tensor"], ["g", "graph"], ["floats", "floats"],
    ["ints", "ints"], ["strings", "strings"], ["tensors", "tensors"], ["graphs", "graphs"],
  ] as const) {
    if (Array.isArray(a[field]) ? a[field].length > 0 : has(a, field)) return kind;
  }
  return "undefined";
}

function decodeAttr(a: Msg, ctx: Ctx, depth: number, node: string): Attr {
  if (a.ref_attr_name) return { type: "raw", proto: a };
  switch (attrKind(a)) {
    case "float": return { type: "float", value: a.f ?? 0 };
    case "int": return { type: "int", value: num(a.i) };
    case "string": return { type: "string", value: str(a.s ?? new Uint8Array()) };
    case "tensor": return { type: "tensor", value: decodeTensor(a.t, ctx, `${node}.${a.name}`) };
    case "graph": return { type: "graph", value: decodeGraph(a.g, ctx, depth + 1) };
    case "floats": return { type: "floats", value: [...a.floats] };
    case "ints": return { type: "ints", value: a.ints.map(num) };
    case "strings": return { type: "strings", value: a.strings.map(str) };
    case "tensors": return { type: "tensors", value: a.tensors.map((t: Msg) => decodeTensor(t, ctx, `${node}.${a.name}`)) };
    case "graphs": return { type: "graphs", value: a.graphs.map((g: Msg) => decodeGraph(g, ctx, depth + 1)) };
    case "undefined":
      throw new OnnxError(`attribute '${a.name}' has no value`, { file: ctx.file, node });
    default:
      return { type: "raw", proto: a };
  }
}

function decodeValueInfo(v: Msg): ValueInfo {
  const info: ValueInfo = { name: v.name ?? "" };
  if (has(v, "doc_string")) info.doc = v.doc_string;
  const t = v.type;
  if (!t) return info;
  if (has(t, "tensor_type")) {
    const tt = t.tensor_type;
    if (has(tt, "elem_type")) info.dtype = dtypeFromCode(tt.elem_type);
    if (has(tt, "shape")) {
      info.shape = tt.shape.dim.map((d: Msg): Dim => {
        if (has(d, "dim_value")) return num(d.dim_value);
        if (has(d, "dim_param") && d.dim_param) return d.dim_param;
        return null;
      });
    }
    if (has(t, "denotation") || tt.shape?.dim.some((d: Msg) => has(d, "denotation"))) info.rawType = t;
  } else info.rawType = t;
  return info;
}

function readExternal(t: Msg, ctx: Ctx, where: string): Uint8Array {
  const e = Object.fromEntries(t.external_data.map((kv: Msg) => [kv.key, kv.value]));
  const loc = e.location as string | undefined;
  const err = (msg: string) => new OnnxError(`tensor '${where}': ${msg}`, { file: ctx.file });
  if (!loc) throw err("external data without a location");
  if (!ctx.dir) throw err(`external data '${loc}' needs the model's path to be found`);
  if (isAbsolute(loc)) throw err(`external data location '${loc}' must be relative to the model`);
  const full = resolve(ctx.dir, loc);
  let real: string;
  try {
    real = realpathSync(full);
  } catch {
    throw err(`external data file '${loc}' not found next to the model (looked for ${full})`);
  }
  const rel = relative(realpathSync(ctx.dir), real);
  if (rel.startsWith("..") || isAbsolute(rel)) throw err(`external data location '${loc}' leaves the model's folder`);
  const file = readFileSync(join(real));
  const offset = e.offset !== undefined ? Number(e.offset) : 0;
  const length = e.length !== undefined ? Number(e.length) : file.length - offset;
  if (!(offset >= 0 && length >= 0 && offset + length <= file.length)) {
    throw err(`external data '${loc}' offset ${offset} + length ${length} is outside the file (${file.length} bytes)`);
  }
  return file.subarray(offset, offset + length);
}

export function decodeTensor(t: Msg, ctx: Ctx = { widen: false }, where = t.name ?? ""): Tensor {
  const err = (msg: string) => new OnnxError(`tensor '${where}': ${msg}`, { file: ctx.file });
  const dtype = dtypeFromCode(t.data_type ?? 0);
  if (!dtype) throw err(`unknown data type ${t.data_type}`);
  const dims: number[] = t.dims.map(num);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw err(`invalid dims [${dims}]`);
  const n = numel(dims);
  if (n > MAX_ELEMENTS) throw err(`dims [${dims}] claim ${n} elements, more than qat will load`);
  if (has(t, "segment")) throw err("segmented tensors are not supported");
  const out: Tensor = { dtype, dims, data: new Uint8Array() };
  if (has(t, "doc_string")) out.doc = t.doc_string;
  if (dtype === "string") {
    if (t.string_data.length !== n) throw err(`has ${t.string_data.length} strings for ${n} elements`);
    out.data = [...t.string_data];
    return out;
  }
  const { ctor, slots } = STORAGE[dtype];
  const count = n * slots;
  let raw: Uint8Array | undefined;
  if (t.data_location === 1) raw = readExternal(t, ctx, where);
  else if (has(t, "raw_data")) raw = t.raw_data;
  if (raw) {
    const bits = bitsPerElement(dtype);
    const expect = Math.ceil((n * bits) / 8);
    if (raw.length !== expect) throw err(`raw data has ${raw.length} bytes, dims [${dims}] of ${dtype} need ${expect}`);
    if (bits === 4) out.data = unpack4(raw, n, dtype);
    else {
      const copy = new Uint8Array(raw); // aligned copy
      out.data = new ctor(copy.buffer, 0, count);
    }
  } else {
    const field = typedField(dtype);
    const src: ArrayLike<unknown> = t[field];
    if (bitsPerElement(dtype) === 4) {
      const bytes = Uint8Array.from(src as ArrayLike<number>, (v) => num(v) & 0xff);
      if (bytes.length !== Math.ceil(n / 2)) throw err(`has ${bytes.length} packed values for ${n} elements`);
      out.data = unpack4(bytes, n, dtype);
    } else {
      if (src.length !== count) throw err(`has ${src.length} values in ${field} for dims [${dims}] (${count} needed)`);
      const data = new ctor(count);
      const big = ctor === BigInt64Array || ctor === BigUint64Array;
      for (let i = 0; i < count; i++) {
        const v = src[i];
        (data as unknown as (number | bigint)[])[i] = big ? (Long.isLong(v) ? BigInt((v as Long).toString()) : BigInt(v as number)) : num(v);
      }
      out.data = data;
    }
  }
  if (ctx.widen && (dtype === "float16" || dtype === "bfloat16")) {
    return { ...out, dtype: "float32", data: toF32Bits(out) };
  }
  return out;
}

function toF32Bits(t: Tensor): Float32Array {
  const src = t.data as Uint16Array;
  const o = new Float32Array(src.length);
  if (t.dtype === "bfloat16") {
    const u = new Uint32Array(o.buffer);
    for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  } else {
    for (let i = 0; i < src.length; i++) o[i] = halfToFloat(src[i]!);
  }
  return o;
}

function typedField(dtype: DType): string {
  switch (dtype) {
    case "float32": case "complex64": return "float_data";
    case "float64": case "complex128": return "double_data";
    case "int64": return "int64_data";
    case "uint32": case "uint64": return "uint64_data";
    default: return "int32_data";
  }
}

function unpack4(bytes: Uint8Array, n: number, dtype: DType): Int8Array | Uint8Array {
  const out = dtype === "int4" ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let v = (bytes[i >> 1]! >> ((i & 1) * 4)) & 0xf;
    if (dtype === "int4" && v >= 8) v -= 16;
    out[i] = v;
  }
  return out;
}

function pack4(data: Int8Array | Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 2));
  for (let i = 0; i < data.length; i++) out[i >> 1]! |= (data[i]! & 0xf) << ((i & 1) * 4);
  return out;
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
  return ModelProto.encode(ModelProto.fromObject(m)).finish();
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

function encodeAttr(name: string, a: Attr): Msg {
  const enc = new TextEncoder();
  switch (a.type) {
    case "raw": return a.proto;
    case "float": return { name, type: AttrType.FLOAT, f: a.value };
    case "int": return { name, type: AttrType.INT, i: Long.fromNumber(a.value) };
    case "string": return { name, type: AttrType.STRING, s: enc.encode(a.value) };
    case "tensor": return { name, type: AttrType.TENSOR, t: encodeTensor(a.value) };
    case "graph": return { name, type: AttrType.GRAPH, g: encodeGraph(a.value) };
    case "floats": return { name, type: AttrType.FLOATS, floats: a.value };
    case "ints": return { name, type: AttrType.INTS, ints: a.value.map((v) => Long.fromNumber(v)) };
    case "strings": return { name, type: AttrType.STRINGS, strings: a.value.map((s) => enc.encode(s)) };
    case "tensors": return { name, type: AttrType.TENSORS, tensors: a.value.map((t) => encodeTensor(t)) };
    case "graphs": return { name, type: AttrType.GRAPHS, graphs: a.value.map(encodeGraph) };
  }
}

export function encodeTensor(t: Tensor, name?: string): Msg {
  const out: Msg = { dims: t.dims, data_type: DTYPE_CODE[t.dtype] };
  if (name !== undefined) out.name = name;
  if (t.doc !== undefined) out.doc_string = t.doc;
  if (t.dtype === "string") out.string_data = t.data;
  else if (bitsPerElement(t.dtype) === 4) out.raw_data = pack4(t.data as Int8Array | Uint8Array);
  else {
    const d = t.data as Exclude<Tensor["data"], Uint8Array[]>;
    out.raw_data = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  }
  return out;
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
        dim: v.shape.map((d) => (typeof d === "number" ? { dim_value: d } : typeof d === "string" ? { dim_param: d } : {})),
      };
    }
    out.type = { tensor_type: tt };
    const raw = v.rawType as Msg;
    if (raw?.denotation) out.type.denotation = raw.denotation;
  }
  return out;
}

/** A fresh model around a graph, at qat's working opset. */
export function modelOf(graph: Graph, opsets: Record<string, number> = { "": 17 }, producer = "qat"): Model {
  return {
    irVersion: 8,
    opsets,
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
