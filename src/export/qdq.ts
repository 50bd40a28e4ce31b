import { attrInt, cloneGraph, type Graph, type Node, sortGraph } from "../onnx/ir.js";
import { type Tensor, tensor, toFloat32 } from "../onnx/tensor.js";
import { constantNodes, evaluateConstants } from "./constants.js";
import { ExportError } from "./errors.js";
import type { QatSource } from "./source.js";

/** Ops that move quantized values without changing them: a Q/DQ pair with the same parameters goes after them. */
export const PASS_THROUGH = new Set(["MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose"]);

export interface QdqOptions {
  /**
   * Keep biases as float initializers (the values the simulation's int32 fake-quant produced) instead of int32
   * tensors behind DequantizeLinear: TensorRT quantizes biases itself.
   */
  biasAsFloat?: boolean;
}

export interface QdqBuild {
  graph: Graph;
  /** Weights whose learned scale went negative in training: the sign moved into their integers (exact). */
  flippedScales: { tensor: string; channels: number }[];
}

/**
 * The QDQ model of a QAT checkpoint. Its fake-quant eval graph already computes with QuantizeLinear/DequantizeLinear;
 * what changes is where the numbers live: everything computed from initializers alone (BN folding, weight
 * QuantizeLinear and its narrowing Clip, bias Round(b / (s_x·s_w))) is evaluated once by ONNX Runtime and stored —
 * weights as int8/uint8 initializers behind DequantizeLinear, biases as int32 behind DequantizeLinear with scale
 * s_x·s_w (or as float, see `biasAsFloat`) — and the nodes that computed them are dropped. Q/DQ pairs with the same
 * parameters go after MaxPool/Flatten/Reshape/… so that runtimes see every quantized op between DQ and Q (ORT
 * then runs them on integers). Nothing numeric changes: the graph computes what the simulation computed.
 */
export async function buildQdq(src: QatSource, opts: QdqOptions = {}): Promise<QdqBuild> {
  const g = cloneGraph(src.graph);
  g.valueInfo = new Map();
  const consts = constantNodes(g);
  const producers = g.producers();
  const consumers = g.consumers();
  const fromConst = (v: string) => {
    const p = producers.get(v);
    return !!p && consts.has(p);
  };
  for (const o of g.outputs) {
    if (fromConst(o.name))
      throw new ExportError("the output does not depend on the input", { file: src.file, tensor: o.name });
  }
  const boundary = new Set<string>();
  for (const n of g.nodes)
    if (!consts.has(n)) for (const i of n.inputs) if (i && fromConst(i)) boundary.add(i);

  // int32 bias fake-quant: Mul(Round(Div(b, s)), s) read by Conv/Gemm as their bias
  const biases = new Map<string, { rounded: string; scale: string }>();
  if (!opts.biasAsFloat) {
    for (const v of boundary) {
      const mul = producers.get(v)!;
      if (mul.opType !== "Mul") continue;
      const round = producers.get(mul.inputs[0]!);
      const div = round?.opType === "Round" ? producers.get(round.inputs[0]!) : undefined;
      if (div?.opType !== "Div" || div.inputs[1] !== mul.inputs[1]) continue;
      const users = consumers.get(v) ?? [];
      if (
        !users.every(
          (u) => (u.opType === "Conv" || u.opType === "Gemm") && u.inputs[2] === v && u.inputs[0] !== v,
        )
      )
        continue;
      biases.set(v, { rounded: round!.outputs[0]!, scale: mul.inputs[1]! });
    }
  }
  const needed = [...boundary].filter((v) => !biases.has(v));
  for (const b of biases.values()) needed.push(b.rounded, b.scale);
  const vals = await evaluateConstants(g, consts, needed);

  g.nodes = g.nodes.filter((n) => !consts.has(n));
  const rename = new Map<string, string>();
  for (const v of boundary) {
    if (biases.has(v)) continue;
    const t = vals.get(v)!;
    // integer weights get a readable name: conv1.weight.fake_quant.quantize_out0 → conv1.weight.quantized
    const intoDq = (consumers.get(v) ?? []).every(
      (u) => u.opType === "DequantizeLinear" && u.inputs[0] === v,
    );
    const name =
      intoDq && t.dtype !== "float32" ? g.uniqueName(`${v.replace(/\.fake_quant\..*$/, "")}.quantized`) : v;
    if (name !== v) rename.set(v, name);
    g.initializers.set(name, t);
  }
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => rename.get(i) ?? i);
  for (const [v, b] of biases) {
    const r = toFloat32(vals.get(b.rounded)!);
    const ints = new Int32Array(r.length);
    for (let i = 0; i < r.length; i++) {
      if (!(Math.abs(r[i]!) <= 2147483647)) {
        throw new ExportError(`the bias is ${r[i]} steps of s_x·s_w at index ${i}: it does not fit int32`, {
          file: src.file,
          tensor: v,
        });
      }
      ints[i] = r[i]!;
    }
    const base = v.replace(/\.fq$/, "");
    const scaleT = vals.get(b.scale)!;
    const q = g.constant(`${base}.int32`, tensor("int32", [ints.length], ints));
    const s = g.constant(`${base}.scale`, scaleT);
    const perAxis = scaleT.dims.length === 1 && scaleT.dims[0]! > 1;
    const z = g.constant(
      `${base}.zero_point`,
      tensor("int32", perAxis ? [ints.length] : [], new Int32Array(perAxis ? ints.length : 1)),
    );
    const axis: Record<string, number> = perAxis ? { axis: 0 } : {};
    g.op("DequantizeLinear", [q, s, z], axis, { name: `${base}.dequantize`, output: v });
  }
  const flippedScales = positiveScales(g, src.file);
  insertPassThroughPairs(g);
  sortGraph(g);
  dropUnused(g);
  return { graph: g, flippedScales };
}

/**
 * A learned per-channel weight scale can cross zero in training (LSQ moves it freely). q·s = (−q)·(−s) exactly, so
 * a negative scale is made positive by negating the integers of its channel; the one value that cannot be negated
 * (−128 in int8) is an error naming the tensor.
 */
function positiveScales(g: Graph, file: string): { tensor: string; channels: number }[] {
  const out: { tensor: string; channels: number }[] = [];
  for (const n of g.nodes) {
    if (n.opType !== "DequantizeLinear") continue;
    const x = g.initializers.get(n.inputs[0]!);
    const st = g.initializers.get(n.inputs[1]!);
    if (!x || !st) continue;
    const s = toFloat32(st);
    if (!s.some((v) => v < 0)) continue;
    const rank = x.dims.length;
    const axis = s.length > 1 ? (attrInt(n, "axis", 1) + rank) % rank : -1;
    const inner = axis < 0 ? x.data.length : x.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const data = (x.data as Int8Array | Uint8Array | Int32Array).slice();
    const scale = s.slice();
    const [lo, hi] =
      x.dtype === "int8" ? [-128, 127] : x.dtype === "int32" ? [-2147483648, 2147483647] : [0, 255];
    const zp = n.inputs[2] ? toFloat32(g.initializers.get(n.inputs[2])!) : undefined;
    let channels = 0;
    for (let c = 0; c < s.length; c++) {
      if (s[c]! >= 0) continue;
      if (zp && zp[zp.length > 1 ? c : 0] !== 0) {
        throw new ExportError(
          `negative scale with a non-zero zero point in channel ${c}: cannot be made positive`,
          { file, tensor: n.inputs[1] },
        );
      }
      channels++;
      scale[c] = -s[c]!;
      for (let i = 0; i < data.length; i++) {
        if (axis >= 0 && Math.floor(i / inner) % s.length !== c) continue;
        const v = -data[i]!;
        if (v < lo || v > hi) {
          throw new ExportError(
            `the learned scale of channel ${c} is negative and its integers include ${data[i]}, whose negation ${v} ` +
              `is outside ${x.dtype}: retrain with a positive scale`,
            { file, tensor: n.inputs[0] },
          );
        }
        data[i] = v;
      }
    }
    n.inputs[0] = g.constant(`${n.inputs[0]}`, { ...x, data });
    n.inputs[1] = g.constant(`${n.inputs[1]}`, { ...st, dtype: "float32", data: scale });
    out.push({ tensor: n.outputs[0]!, channels });
  }
  return out;
}

/** After each pass-through op reading a dequantized activation: Q → DQ with the same scale and zero point. */
function insertPassThroughPairs(g: Graph): void {
  const producers = g.producers();
  const outputs = new Set(g.outputs.map((o) => o.name));
  for (const n of [...g.nodes]) {
    if (!PASS_THROUGH.has(n.opType) || n.domain !== "") continue;
    const dq = producers.get(n.inputs[0]!);
    if (dq?.opType !== "DequantizeLinear" || g.initializers.has(dq.inputs[0]!)) continue;
    const s = g.initializers.get(dq.inputs[1]!);
    if (!s || s.dims.length > 0 || (n.opType === "MaxPool" && toFloat32(s)[0]! <= 0)) continue;
    if (n.opType === "MaxPool" && n.outputs.length > 1 && n.outputs[1]) continue;
    const y = n.outputs[0]!;
    if (outputs.has(y)) continue;
    const raw = g.uniqueName(`${y}.float`);
    n.outputs[0] = raw;
    const params = dq.inputs.slice(1).filter(Boolean);
    const q = g.op("QuantizeLinear", [raw, ...params], {}, { name: `${y}.quantize` });
    g.op("DequantizeLinear", [q, ...params], {}, { name: `${y}.dequantize`, output: y });
    producers.set(y, g.nodes.at(-1)!);
  }
}

/** Drop initializers no node reads. */
export function dropUnused(g: Graph): void {
  const used = new Set<string>(g.outputs.map((o) => o.name));
  for (const n of g.nodes) for (const i of n.inputs) used.add(i);
  for (const k of [...g.initializers.keys()]) if (!used.has(k)) g.initializers.delete(k);
  g.inputs = g.inputs.filter((v) => !g.initializers.has(v.name) || used.has(v.name));
  g.invalidate();
}

/** Per output channel, the quantization step of a graph output, and the axis it runs along. */
export interface OutputStep {
  scale: Float32Array;
  axis: number;
  /**
   * "dequantize": the scale of the 8-bit DequantizeLinear producing the output; "accumulator": s_x·s_w of the
   * integer Conv/Gemm/MatMul whose float result is the output (one step of its int32 accumulator, whether a
   * DequantizeLinear of the int32 sum or a float Conv/Gemm on dequantized inputs computes it).
   */
  kind: "dequantize" | "accumulator";
}

/** The quantization step of output `name`, or undefined when it is neither dequantized nor a quantized layer's sum. */
export function outputStep(g: Graph, name: string): OutputStep | undefined {
  const producers = g.producers();
  const constOf = (v: string | undefined): Float32Array | undefined => {
    const t = v ? g.initializers.get(v) : undefined;
    return t ? toFloat32(t) : undefined;
  };
  let p: Node | undefined = producers.get(name);
  while (p && p.opType === "Identity") p = producers.get(p.inputs[0]!);
  if (!p) return undefined;
  if (p.opType === "DequantizeLinear") {
    const s = constOf(p.inputs[1]);
    const z = p.inputs[2] ? g.initializers.get(p.inputs[2]) : undefined;
    const int32 = z?.dtype === "int32" || g.initializers.get(p.inputs[0]!)?.dtype === "int32";
    return s
      ? {
          scale: s,
          axis: s.length > 1 ? attrInt(p, "axis", 1) : -1,
          kind: int32 ? "accumulator" : "dequantize",
        }
      : undefined;
  }
  if (p.opType === "Add") {
    // MatMul + bias
    const mm = producers.get(p.inputs[0]!);
    if (mm?.opType === "MatMul") p = mm;
  }
  if (p.opType !== "Conv" && p.opType !== "Gemm" && p.opType !== "MatMul") return undefined;
  const dx = producers.get(p.inputs[0]!);
  const dw = producers.get(p.inputs[1]!);
  if (dx?.opType !== "DequantizeLinear" || dw?.opType !== "DequantizeLinear") return undefined;
  const sx = constOf(dx.inputs[1]);
  const sw = constOf(dw.inputs[1]);
  if (!sx || !sw || sx.length !== 1) return undefined;
  const scale = Float32Array.from(sw, (v) => Math.fround(sx[0]! * Math.abs(v)));
  const axis = sw.length > 1 ? (p.opType === "MatMul" ? -1 : 1) : -1;
  return { scale, axis, kind: "accumulator" };
}

export type { Tensor };
