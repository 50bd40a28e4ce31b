import { attrInt, cloneGraph, type Graph, type Node, sortGraph } from "../onnx/ir.js";
import { type Tensor, tensor, toFloat32 } from "../onnx/tensor.js";
import { dropUnused, PASS_THROUGH } from "./qdq.js";

export const MS_DOMAIN = "com.microsoft";

/** What became of each quantized op of the QDQ model. */
export interface QOperatorReport {
  /** Integer ops emitted, by op type (e.g. QLinearConv: 2). */
  integerOps: Record<string, number>;
  /** Float ops left between DequantizeLinear and QuantizeLinear (no integer op for them), by node name. */
  float: string[];
}

interface Dq {
  node: Node;
  x: string;
  scale: string;
  zeroPoint: string;
  axis: number;
}

interface Qout {
  /** The nodes from the float op's output to the QuantizeLinear (a Relu the saturation makes redundant, the Q). */
  nodes: Node[];
  scale: string;
  zeroPoint: string;
  output: string;
}

/** An int32 bias behind a DequantizeLinear: the integer values' name and tensor. */
interface Int32Bias {
  values: string;
  tensor: Tensor;
}

/** Ops with a product (an integer kernel with or without a quantized output). */
const PRODUCTS = new Set(["Conv", "Gemm", "MatMul"]);
/** Ops with a QLinear kernel that needs a Q after them (no float-output form). */
const QLINEAR_ONLY = new Set(["Add", "GlobalAveragePool", "AveragePool", "Concat"]);

/**
 * The QOperator form of a QDQ model: every node unit DQ → op → [Relu] → Q whose op has an integer kernel in ONNX
 * Runtime becomes that kernel — QLinearConv, QGemm (com.microsoft), QLinearMatMul, QLinearAdd,
 * QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat (com.microsoft) —, a pass-through op between a DQ and
 * a Q of equal parameters runs on the integers, and a Conv/Gemm/MatMul with a float result becomes
 * ConvInteger/MatMulInteger + int32 bias + DequantizeLinear with scale s_x·s_w. Anything else stays as QDQ around a
 * float op. A Relu between the op and the Q is dropped only when the Q's zero point is the type's minimum, where
 * saturation does what Relu did.
 */
export function toQOperator(qdq: Graph): { graph: Graph; report: QOperatorReport } {
  const g = cloneGraph(qdq);
  const units = new NodeUnits(g);
  for (const n of g.nodes) {
    if (units.removed.has(n) || n.domain !== "") continue;
    if (PRODUCTS.has(n.opType)) rewriteProduct(units, n);
    else if (QLINEAR_ONLY.has(n.opType)) rewriteQLinearOnly(units, n);
    else if (PASS_THROUGH.has(n.opType)) rewritePassThrough(units, n);
  }
  g.nodes = [...g.nodes.filter((x) => !units.removed.has(x)), ...units.added];
  g.invalidate();
  dropUnread(g, units.outputs);
  sortGraph(g);
  dropUnused(g);
  return { graph: g, report: units.report };
}

/**
 * The graph being rewritten, seen as node units: which DequantizeLinear feeds a value, which QuantizeLinear reads
 * one, and the bookkeeping of nodes taken out and integer nodes put in. Producers and consumers are those of the
 * QDQ graph: rewrites append to `added` and mark `removed`, and never edit `g.nodes` until the walk is over.
 */
class NodeUnits {
  readonly report: QOperatorReport = { integerOps: {}, float: [] };
  readonly removed = new Set<Node>();
  readonly added: Node[] = [];
  readonly outputs: Set<string>;
  private readonly producers: Map<string, Node>;
  private readonly consumers: Map<string, Node[]>;

  constructor(readonly g: Graph) {
    this.producers = g.producers();
    this.consumers = g.consumers();
    this.outputs = new Set(g.outputs.map((o) => o.name));
  }

  init(v: string | undefined): Tensor | undefined {
    return v ? this.g.initializers.get(v) : undefined;
  }

  /** Queue one node for the QOperator graph (appended after the walk, so the walk never sees it). */
  emit(
    opType: string,
    inputs: string[],
    attrs: Node["attrs"],
    name: string,
    output: string,
    domain = "",
  ): void {
    this.added.push({ name, opType, domain, inputs, outputs: [output], attrs });
  }

  count(op: string): void {
    this.report.integerOps[op] = (this.report.integerOps[op] ?? 0) + 1;
  }

  /** `n` stays a float op between DQ and Q. */
  keepFloat(n: Node): void {
    this.report.float.push(n.name);
  }

  take(...nodes: Node[]): void {
    for (const n of nodes) this.removed.add(n);
  }

  /** The DequantizeLinear producing `v`, when its scale and zero point are initializers. */
  dqOf(v: string): Dq | undefined {
    const n = this.producers.get(v);
    if (n?.opType !== "DequantizeLinear" || this.removed.has(n)) return undefined;
    const s = this.init(n.inputs[1]);
    const z = this.init(n.inputs[2]);
    if (!s || !z) return undefined;
    return {
      node: n,
      x: n.inputs[0]!,
      scale: n.inputs[1]!,
      zeroPoint: n.inputs[2]!,
      axis: attrInt(n, "axis", 1),
    };
  }

  perTensor(d: Dq | Qout | undefined): boolean {
    return !!d && this.init(d.scale)!.dims.length === 0 && this.init(d.zeroPoint)!.dims.length === 0;
  }

  /** The per-tensor Q that is the only reader of `v`, possibly through a Relu that the Q's saturation makes moot. */
  qAfter(v: string): Qout | undefined {
    if (this.outputs.has(v)) return undefined;
    const users = this.consumers.get(v) ?? [];
    if (users.length !== 1) return undefined;
    let u = users[0]!;
    const chain: Node[] = [];
    if (u.opType === "Relu") {
      if (this.outputs.has(u.outputs[0]!)) return undefined;
      const next = this.consumers.get(u.outputs[0]!) ?? [];
      if (next.length !== 1) return undefined;
      chain.push(u);
      u = next[0]!;
    }
    if (u.opType !== "QuantizeLinear" || !this.init(u.inputs[1]) || !this.init(u.inputs[2])) return undefined;
    const zt = this.init(u.inputs[2])!;
    if (chain.length) {
      const zmin = zt.dtype === "int8" ? -128 : 0;
      if (toFloat32(zt)[0] !== zmin) return undefined;
    }
    chain.push(u);
    const q: Qout = { nodes: chain, scale: u.inputs[1]!, zeroPoint: u.inputs[2]!, output: u.outputs[0]! };
    return this.perTensor(q) ? q : undefined;
  }

  /** Whether two initializers hold the same values (bit for bit, so -0 and NaN compare as stored). */
  same(a: string, b: string): boolean {
    if (a === b) return true;
    const ta = this.init(a);
    const tb = this.init(b);
    if (!ta || !tb || ta.dtype !== tb.dtype || ta.dims.join() !== tb.dims.join()) return false;
    const fa = toFloat32(ta);
    const fb = toFloat32(tb);
    return fa.every((v, i) => Object.is(v, fb[i]));
  }

  /** The int32 bias behind a DQ at `v`; undefined when there is no bias, null when it is anything else. */
  int32Bias(v: string | undefined): Int32Bias | undefined | null {
    if (!v) return undefined;
    const d = this.dqOf(v);
    const t = d && this.init(d.x);
    return t && t.dtype === "int32" ? { values: d.x, tensor: t } : null;
  }

  /** s_x·s_w per output channel, as the bias quantization computed it (float32). */
  accScale(x: Dq, w: Dq, base: string): string {
    const sx = toFloat32(this.init(x.scale)!)[0]!;
    const sw = toFloat32(this.init(w.scale)!);
    const s = Float32Array.from(sw, (v) => Math.fround(sx * v));
    return this.g.constant(`${base}.acc_scale`, tensor("float32", s.length > 1 ? [s.length] : [], s));
  }
}

/**
 * Conv, Gemm or MatMul with a per-tensor quantized input and int8/uint8 weights behind DQs: a QLinear kernel when a
 * Q reads the result, else an integer product dequantized to float. Anything ORT's kernels cannot take stays float.
 */
function rewriteProduct(units: NodeUnits, n: Node): void {
  const x = units.dqOf(n.inputs[0]!);
  const w = units.dqOf(n.inputs[1]!);
  const wt = units.init(w?.x);
  if (!x || !w || !units.perTensor(x) || !wt || (wt.dtype !== "int8" && wt.dtype !== "uint8")) {
    if (x || w) units.keepFloat(n);
    return;
  }
  const bias = units.int32Bias(n.inputs[2]);
  if (bias === null) {
    units.keepFloat(n);
    return;
  }
  // QGemm and MatMulInteger have no transposed A, no alpha and no beta
  if (n.opType === "Gemm" && (attrInt(n, "transA", 0) !== 0 || n.attrs.alpha || n.attrs.beta)) {
    units.keepFloat(n);
    return;
  }
  const q = units.qAfter(n.outputs[0]!);
  if (q) {
    emitQLinearProduct(units, n, x, w, bias, q);
    units.take(n, ...q.nodes);
  } else {
    rewriteIntegerProduct(units, n, x, w, bias);
  }
}

/** DQ → Conv/Gemm/MatMul → [Relu] → Q as one QLinearConv, QGemm or QLinearMatMul. */
function emitQLinearProduct(
  units: NodeUnits,
  n: Node,
  x: Dq,
  w: Dq,
  bias: Int32Bias | undefined,
  q: Qout,
): void {
  const name = n.name;
  if (n.opType === "Conv") {
    const ins = [x.x, x.scale, x.zeroPoint, w.x, w.scale, w.zeroPoint, q.scale, q.zeroPoint];
    if (bias) ins.push(bias.values);
    units.emit("QLinearConv", ins, { ...n.attrs }, name, q.output);
    units.count("QLinearConv");
  } else if (n.opType === "Gemm") {
    const ins = [
      x.x,
      x.scale,
      x.zeroPoint,
      w.x,
      w.scale,
      w.zeroPoint,
      bias?.values ?? "",
      q.scale,
      q.zeroPoint,
    ];
    const attrs: Node["attrs"] = { transB: { type: "int", value: attrInt(n, "transB", 0) } };
    units.emit("QGemm", ins, attrs, name, q.output, MS_DOMAIN);
    units.count("QGemm");
  } else {
    const ins = [x.x, x.scale, x.zeroPoint, w.x, w.scale, w.zeroPoint, q.scale, q.zeroPoint];
    units.emit("QLinearMatMul", ins, {}, name, q.output);
    units.count("QLinearMatMul");
  }
}

/**
 * A product with a float result: ConvInteger/MatMulInteger, plus the int32 bias, then DequantizeLinear by s_x·s_w
 * per output channel (zero point 0), which is what the fake-quant simulation computed in float.
 */
function rewriteIntegerProduct(units: NodeUnits, n: Node, x: Dq, w: Dq, bias: Int32Bias | undefined): void {
  const { g } = units;
  const name = n.name;
  const acc = g.uniqueName(`${name}.acc`);
  const channels = toFloat32(units.init(w.scale)!).length;
  if (n.opType === "Conv") {
    const wz = convWeightZeroPoint(units, w);
    if (wz === undefined) {
      units.keepFloat(n);
      return;
    }
    units.emit("ConvInteger", [x.x, w.x, x.zeroPoint, wz], { ...n.attrs }, name, acc);
  } else {
    let b = w.x;
    let bz = w.zeroPoint;
    // MatMulInteger has no transB: transpose the int8 weights once, here
    if (n.opType === "Gemm" && attrInt(n, "transB", 0) === 1) {
      b = g.constant(`${w.x}.transposed`, transpose2d(units.init(w.x)!));
    }
    const zt = units.init(w.zeroPoint)!;
    if (zt.dims.length === 0 && channels > 1)
      bz = g.constant(
        `${w.zeroPoint}.per_column`,
        tensor(zt.dtype, [channels], new Array(channels).fill(toFloat32(zt)[0])),
      );
    units.emit("MatMulInteger", [x.x, b, x.zeroPoint, bz], {}, name, acc);
  }
  units.count(n.opType === "Conv" ? "ConvInteger" : "MatMulInteger");
  let sum = acc;
  if (bias) {
    const c = bias.tensor.dims[0]!;
    const shaped =
      n.opType === "Conv"
        ? g.constant(`${bias.values}.nchw`, { ...bias.tensor, dims: [c, 1, 1] })
        : bias.values;
    sum = g.uniqueName(`${name}.acc_bias`);
    units.emit("Add", [acc, shaped], {}, `${name}.add_bias`, sum);
  }
  const s = units.accScale(x, w, name);
  const zero = g.constant(
    `${name}.acc_zero_point`,
    tensor("int32", channels > 1 ? [channels] : [], new Int32Array(Math.max(channels, 1))),
  );
  const axis: Node["attrs"] = channels > 1 ? { axis: { type: "int", value: 1 } } : {};
  units.emit("DequantizeLinear", [sum, s, zero], axis, `${name}.dequantize`, n.outputs[0]!);
  units.take(n);
}

/**
 * The one weight zero point ORT's ConvInteger takes for the whole tensor: the scalar itself, a new scalar when the
 * per-channel zero points are all equal, undefined when they differ (no integer kernel for that).
 */
function convWeightZeroPoint(units: NodeUnits, w: Dq): string | undefined {
  const zt = units.init(w.zeroPoint)!;
  const zs = toFloat32(zt);
  if (!zs.every((v) => v === zs[0])) return undefined;
  return zt.dims.length === 0
    ? w.zeroPoint
    : units.g.constant(`${w.zeroPoint}.scalar`, tensor(zt.dtype, [], [zs[0]!]));
}

/** Add, GlobalAveragePool, AveragePool or Concat between per-tensor DQs and a Q, as its QLinear kernel. */
function rewriteQLinearOnly(units: NodeUnits, n: Node): void {
  const ins = n.inputs.map((v) => units.dqOf(v));
  if (ins.some((d) => !units.perTensor(d))) {
    if (ins.some(Boolean)) units.keepFloat(n);
    return;
  }
  const q = units.qAfter(n.outputs[0]!);
  if (!q) {
    units.keepFloat(n);
    return;
  }
  const d = ins as Dq[];
  const name = n.name;
  const unit = (e: Dq) => [e.x, e.scale, e.zeroPoint];
  if (n.opType === "Add") {
    const args = [...unit(d[0]!), ...unit(d[1]!), q.scale, q.zeroPoint];
    units.emit("QLinearAdd", args, {}, name, q.output, MS_DOMAIN);
  } else if (n.opType === "GlobalAveragePool") {
    const attrs: Node["attrs"] = { channels_last: { type: "int", value: 0 } };
    units.emit(
      "QLinearGlobalAveragePool",
      [...unit(d[0]!), q.scale, q.zeroPoint],
      attrs,
      name,
      q.output,
      MS_DOMAIN,
    );
  } else if (n.opType === "AveragePool") {
    const args = [...unit(d[0]!), q.scale, q.zeroPoint];
    units.emit("QLinearAveragePool", args, { ...n.attrs }, name, q.output, MS_DOMAIN);
  } else {
    // QLinearConcat takes the output's scale and zero point first, then one (x, scale, zero point) per input
    const args = [q.scale, q.zeroPoint, ...d.flatMap(unit)];
    units.emit("QLinearConcat", args, { ...n.attrs }, name, q.output, MS_DOMAIN);
  }
  units.count(`QLinear${n.opType}`);
  units.take(n, ...q.nodes);
}

/**
 * A pass-through op (MaxPool, Reshape, …) between a DQ and a Q of the same scale and zero point moves integers
 * unchanged, so it runs on the DQ's input and writes the Q's output. MaxPool's second (indices) output rules it out.
 */
function rewritePassThrough(units: NodeUnits, n: Node): void {
  const d = units.dqOf(n.inputs[0]!);
  if (!d || (n.opType === "MaxPool" && n.outputs.length > 1 && n.outputs[1])) return;
  const q = units.qAfter(n.outputs[0]!);
  if (q?.nodes.length !== 1 || !units.same(q.scale, d.scale) || !units.same(q.zeroPoint, d.zeroPoint)) return;
  units.emit(n.opType, [d.x, ...n.inputs.slice(1)], { ...n.attrs }, n.name, q.output);
  units.count(n.opType);
  units.take(n, ...q.nodes);
}

/** Drop what no one reads any more (DequantizeLinear nodes whose readers became integer ops), until nothing changes. */
function dropUnread(g: Graph, outputs: Set<string>): void {
  for (let changed = true; changed; ) {
    const consumers = g.consumers();
    const before = g.nodes.length;
    g.nodes = g.nodes.filter((x) =>
      x.outputs.some((o) => o && (outputs.has(o) || (consumers.get(o)?.length ?? 0) > 0)),
    );
    changed = g.nodes.length !== before;
  }
}

function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.dims as [number, number];
  const src = t.data as Int8Array | Uint8Array;
  const out = new (src.constructor as Int8ArrayConstructor)(src.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j]!;
  return { dtype: t.dtype, dims: [c, r], data: out };
}
