/**
 * A network's training graph written for PyTorch to rebuild (bench/torch/graph_twin.py) without the `onnx` package:
 * DIR/graph.json holds the nodes (op type, inputs, outputs, attributes), the input and output with their per-sample
 * shapes, which initializers qat trains (net.params) and which are BN buffers, and BN momentums; every initializer
 * and tensor attribute is one .npy file beside it.
 *
 * The graph written is `net.train`, the one qat's training step differentiates: BatchNormalization in training mode,
 * Dropout active, and for imported multi-output models the flat [batch, N] output the loss reads. Its nodes updating
 * the BN running statistics are written too (the twin only runs what the output depends on; PyTorch's BN updates its
 * own statistics with the momentum given here).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NetModel } from "../src/nn/model.js";
import type { Attr, Graph, Node } from "../src/onnx/ir.js";
import type { Tensor } from "../src/onnx/tensor.js";
import { outputShape } from "./bench-models.js";

const NPY_DTYPE: Partial<Record<Tensor["dtype"], string>> = {
  float32: "<f4",
  float64: "<f8",
  int64: "<i8",
  int32: "<i4",
  int8: "|i1",
  uint8: "|u1",
  bool: "|b1",
};

/** One tensor as NPY format 1.0 bytes (C order, little-endian). */
export function npyBytes(t: Tensor): Buffer {
  const descr = NPY_DTYPE[t.dtype];
  if (!descr) throw new Error(`cannot write a ${t.dtype} tensor as .npy`);
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // magic (6) + version (2) + header length (2) + header + "\n", padded to a multiple of 64
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const data = t.data as ArrayBufferView;
  const pre = Buffer.alloc(10);
  pre.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    pre,
    Buffer.from(header, "latin1"),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

type JsonAttr = number | string | number[] | string[] | { tensor: string };

/** What graph.json holds (read by bench/torch/graph_twin.py). */
export interface GraphDump {
  name: string;
  input: string;
  /** One sample's input shape. */
  input_shape: number[];
  output: string;
  /** One sample's output shape. */
  output_shape: number[];
  nodes: { name: string; op: string; inputs: string[]; outputs: string[]; attrs: Record<string, JsonAttr> }[];
  /** Initializer (or tensor attribute) name → its .npy file in the folder. */
  tensors: Record<string, string>;
  params: string[];
  buffers: string[];
  /** BatchNormalization node name → PyTorch momentum of its running statistics. */
  bn_momentum: Record<string, number>;
  /** Shapes shape inference knows (symbolic dims as null), for ops that need their input's rank. */
  shapes: Record<string, (number | null)[]>;
}

/** Write `net`'s training graph and values into `dir` (which must exist); returns what graph.json holds. */
export function dumpGraph(net: NetModel, dir: string): GraphDump {
  const g = net.train;
  const tensors: Record<string, string> = {};
  const save = (name: string, t: Tensor): string => {
    const file = `t${Object.keys(tensors).length}.npy`;
    writeFileSync(join(dir, file), npyBytes(t));
    tensors[name] = file;
    return file;
  };
  for (const [name, t] of g.initializers) save(name, t);
  const nodes = g.nodes.map((n) => {
    const attrs: Record<string, JsonAttr> = {};
    for (const [k, a] of Object.entries(n.attrs)) attrs[k] = jsonAttr(a, `${nodeName(n)}.${k}`, save);
    return { name: nodeName(n), op: n.opType, inputs: n.inputs, outputs: n.outputs, attrs };
  });
  const dump: GraphDump = {
    name: net.name,
    input: net.input,
    input_shape: net.inputShape,
    output: net.output,
    output_shape: outputShape(net),
    nodes,
    tensors,
    params: net.params,
    buffers: net.buffers,
    bn_momentum: bnMomentums(net),
    shapes: Object.fromEntries(
      [...g.inputs, ...g.valueInfo.values(), ...g.outputs]
        .filter((v) => v.shape)
        .map((v) => [v.name, v.shape!.map((d) => (typeof d === "number" ? d : null))]),
    ),
  };
  writeFileSync(join(dir, "graph.json"), JSON.stringify(dump));
  return dump;
}

function jsonAttr(a: Attr, name: string, save: (name: string, t: Tensor) => string): JsonAttr {
  switch (a.type) {
    case "float":
    case "int":
    case "string":
    case "floats":
    case "ints":
    case "strings":
      return a.value;
    case "tensor":
      save(name, a.value);
      return { tensor: name };
    default:
      throw new Error(`attribute '${name}' of type ${a.type} cannot be written for the PyTorch twin`);
  }
}

/**
 * PyTorch momentum of each training-mode BN: its running mean's update is Add(Mul(old, 1 − m), Mul(batch, m))
 * (src/nn/builder.ts, src/nn/import/batchnorm.ts); read m back from the Mul with the old value.
 */
function bnMomentums(net: NetModel): Record<string, number> {
  const g = net.train;
  const producer = g.producers();
  const out: Record<string, number> = {};
  for (const n of g.nodes) {
    if (n.opType !== "BatchNormalization") continue;
    const mean = n.inputs[3]!;
    const add = producer.get(net.updates.get(mean) ?? "");
    const keep = add?.inputs
      .map((i) => producer.get(i))
      .find((m) => m?.opType === "Mul" && m.inputs.includes(mean))
      ?.inputs.find((i) => i !== mean);
    const k = keep === undefined ? undefined : scalar(g, keep);
    if (k !== undefined) out[nodeName(n)] = Number((1 - k).toPrecision(7));
  }
  return out;
}

/** Nodes may be unnamed in imported files: then the first output names them. */
const nodeName = (n: Node): string => n.name || n.outputs[0]!;

function scalar(g: Graph, name: string): number | undefined {
  const t = g.initializers.get(name);
  if (t?.dtype === "float32" && t.data.length === 1) return (t.data as Float32Array)[0];
  const c = g.nodes.find((n) => n.opType === "Constant" && n.outputs[0] === name)?.attrs.value;
  if (c?.type === "tensor" && c.value.dtype === "float32" && c.value.data.length === 1)
    return (c.value.data as Float32Array)[0];
  return undefined;
}
