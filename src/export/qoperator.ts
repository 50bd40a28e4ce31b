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
  const report: QOperatorReport = { integerOps: {}, float: [] };
  const producers = g.producers();
  let consumers = g.consumers();
  const outputs = new Set(g.outputs.map((o) => o.name));
  const init = (v: string | undefined): Tensor | undefined => (v ? g.initializers.get(v) : undefined);
  const removed = new Set<Node>();
  const added: Node[] = [];
  const count = (op: string) => {
    report.integerOps[op] = (report.integerOps[op] ?? 0) + 1;
  };
  const emit = (
    opType: string,
    inputs: string[],
    attrs: Node["attrs"],
    name: string,
    output: string,
    domain = "",
  ): void => {
    added.push({ name, opType, domain, inputs, outputs: [output], attrs });
  };

  const dqOf = (v: string): Dq | undefined => {
    const n = producers.get(v);
    if (n?.opType !== "DequantizeLinear" || removed.has(n)) return undefined;
    const s = init(n.inputs[1]);
    const z = init(n.inputs[2]);
    if (!s || !z) return undefined;
    return {
      node: n,
      x: n.inputs[0]!,
      scale: n.inputs[1]!,
      zeroPoint: n.inputs[2]!,
      axis: attrInt(n, "axis", 1),
    };
  };
  const perTensor = (d: Dq | Qout | undefined) =>
    !!d && init(d.scale)!.dims.length === 0 && init(d.zeroPoint)!.dims.length === 0;
  /** The per-tensor Q that is the only reader of `v`, possibly through a Relu that the Q's saturation makes moot. */
  const qAfter = (v: string): Qout | undefined => {
    if (outputs.has(v)) return undefined;
    const users = consumers.get(v) ?? [];
    if (users.length !== 1) return undefined;
    let u = users[0]!;
    const chain: Node[] = [];
    if (u.opType === "Relu") {
      if (outputs.has(u.outputs[0]!)) return undefined;
      const next = consumers.get(u.outputs[0]!) ?? [];
      if (next.length !== 1) return undefined;
      chain.push(u);
      u = next[0]!;
    }
    if (u.opType !== "QuantizeLinear" || !init(u.inputs[1]) || !init(u.inputs[2])) return undefined;
    const zt = init(u.inputs[2])!;
    if (chain.length) {
      const zmin = zt.dtype === "int8" ? -128 : 0;
      if (toFloat32(zt)[0] !== zmin) return undefined;
    }
    chain.push(u);
    const q: Qout = { nodes: chain, scale: u.inputs[1]!, zeroPoint: u.inputs[2]!, output: u.outputs[0]! };
    return perTensor(q) ? q : undefined;
  };
  const same = (a: string, b: string): boolean => {
    if (a === b) return true;
    const ta = init(a);
    const tb = init(b);
    if (!ta || !tb || ta.dtype !== tb.dtype || ta.dims.join() !== tb.dims.join()) return false;
    const fa = toFloat32(ta);
    const fb = toFloat32(tb);
    return fa.every((v, i) => Object.is(v, fb[i]));
  };
  const take = (...nodes: Node[]) => {
    for (const n of nodes) removed.add(n);
  };
  const int32Bias = (v: string | undefined): { values: string; tensor: Tensor } | undefined | null => {
    if (!v) return undefined;
    const d = dqOf(v);
    const t = d && init(d.x);
    return t && t.dtype === "int32" ? { values: d.x, tensor: t } : null;
  };
  /** s_x·s_w per output channel, as the bias quantization computed it (float32). */
  const accScale = (x: Dq, w: Dq, base: string): string => {
    const sx = toFloat32(init(x.scale)!)[0]!;
    const sw = toFloat32(init(w.scale)!);
    const s = Float32Array.from(sw, (v) => Math.fround(sx * v));
    return g.constant(`${base}.acc_scale`, tensor("float32", s.length > 1 ? [s.length] : [], s));
  };

  for (const n of g.nodes) {
    if (removed.has(n) || n.domain !== "") continue;
    const name = n.name;
    if (n.opType === "Conv" || n.opType === "Gemm" || n.opType === "MatMul") {
      const x = dqOf(n.inputs[0]!);
      const w = dqOf(n.inputs[1]!);
      const wt0 = init(w?.x);
      if (!x || !w || !perTensor(x) || !wt0 || (wt0.dtype !== "int8" && wt0.dtype !== "uint8")) {
        if (x || w) report.float.push(name);
        continue;
      }
      const bias = int32Bias(n.inputs[2]);
      if (bias === null) {
        report.float.push(name);
        continue;
      }
      const gemm = n.opType === "Gemm";
      if (gemm && (attrInt(n, "transA", 0) !== 0 || n.attrs.alpha || n.attrs.beta)) {
        report.float.push(name);
        continue;
      }
      const q = qAfter(n.outputs[0]!);
      if (q) {
        if (n.opType === "Conv") {
          const ins = [x.x, x.scale, x.zeroPoint, w.x, w.scale, w.zeroPoint, q.scale, q.zeroPoint];
          if (bias) ins.push(bias.values);
          emit("QLinearConv", ins, { ...n.attrs }, name, q.output);
          count("QLinearConv");
        } else if (gemm) {
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
          emit(
            "QGemm",
            ins,
            { transB: { type: "int", value: attrInt(n, "transB", 0) } },
            name,
            q.output,
            MS_DOMAIN,
          );
          count("QGemm");
        } else {
          emit(
            "QLinearMatMul",
            [x.x, x.scale, x.zeroPoint, w.x, w.scale, w.zeroPoint, q.scale, q.zeroPoint],
            {},
            name,
            q.output,
          );
          count("QLinearMatMul");
        }
        take(n, ...q.nodes);
        continue;
      }
      // float result: integer product, int32 bias, DequantizeLinear by s_x·s_w
      const wt = init(w.x)!;
      const acc = g.uniqueName(`${name}.acc`);
      const channels = toFloat32(init(w.scale)!).length;
      if (n.opType === "Conv") {
        // ORT's ConvInteger takes one weight zero point for the whole tensor
        const zt = init(w.zeroPoint)!;
        const zs = toFloat32(zt);
        if (!zs.every((v) => v === zs[0])) {
          report.float.push(name);
          continue;
        }
        const wz =
          zt.dims.length === 0
            ? w.zeroPoint
            : g.constant(`${w.zeroPoint}.scalar`, tensor(zt.dtype, [], [zs[0]!]));
        emit("ConvInteger", [x.x, w.x, x.zeroPoint, wz], { ...n.attrs }, name, acc);
      } else {
        let b = w.x;
        let bz = w.zeroPoint;
        if (gemm && attrInt(n, "transB", 0) === 1) {
          b = g.constant(`${w.x}.transposed`, transpose2d(wt));
        }
        const zt = init(w.zeroPoint)!;
        if (zt.dims.length === 0 && channels > 1)
          bz = g.constant(
            `${w.zeroPoint}.per_column`,
            tensor(zt.dtype, [channels], new Array(channels).fill(toFloat32(zt)[0])),
          );
        emit("MatMulInteger", [x.x, b, x.zeroPoint, bz], {}, name, acc);
      }
      count(n.opType === "Conv" ? "ConvInteger" : "MatMulInteger");
      let sum = acc;
      if (bias) {
        const c = bias.tensor.dims[0]!;
        const shaped =
          n.opType === "Conv"
            ? g.constant(`${bias.values}.nchw`, { ...bias.tensor, dims: [c, 1, 1] })
            : bias.values;
        sum = g.uniqueName(`${name}.acc_bias`);
        emit("Add", [acc, shaped], {}, `${name}.add_bias`, sum);
      }
      const s = accScale(x, w, name);
      const zero = g.constant(
        `${name}.acc_zero_point`,
        tensor("int32", channels > 1 ? [channels] : [], new Int32Array(Math.max(channels, 1))),
      );
      const axis: Node["attrs"] = channels > 1 ? { axis: { type: "int", value: 1 } } : {};
      emit("DequantizeLinear", [sum, s, zero], axis, `${name}.dequantize`, n.outputs[0]!);
      take(n);
      continue;
    }
    if (
      n.opType === "Add" ||
      n.opType === "GlobalAveragePool" ||
      n.opType === "AveragePool" ||
      n.opType === "Concat"
    ) {
      const ins = n.inputs.map(dqOf);
      if (ins.some((d) => !perTensor(d))) {
        if (ins.some(Boolean)) report.float.push(name);
        continue;
      }
      const q = qAfter(n.outputs[0]!);
      if (!q) {
        report.float.push(name);
        continue;
      }
      const d = ins as Dq[];
      if (n.opType === "Add") {
        emit(
          "QLinearAdd",
          [
            d[0]!.x,
            d[0]!.scale,
            d[0]!.zeroPoint,
            d[1]!.x,
            d[1]!.scale,
            d[1]!.zeroPoint,
            q.scale,
            q.zeroPoint,
          ],
          {},
          name,
          q.output,
          MS_DOMAIN,
        );
      } else if (n.opType === "GlobalAveragePool") {
        emit(
          "QLinearGlobalAveragePool",
          [d[0]!.x, d[0]!.scale, d[0]!.zeroPoint, q.scale, q.zeroPoint],
          { channels_last: { type: "int", value: 0 } },
          name,
          q.output,
          MS_DOMAIN,
        );
      } else if (n.opType === "AveragePool") {
        emit(
          "QLinearAveragePool",
          [d[0]!.x, d[0]!.scale, d[0]!.zeroPoint, q.scale, q.zeroPoint],
          { ...n.attrs },
          name,
          q.output,
          MS_DOMAIN,
        );
      } else {
        emit(
          "QLinearConcat",
          [q.scale, q.zeroPoint, ...d.flatMap((e) => [e.x, e.scale, e.zeroPoint])],
          { ...n.attrs },
          name,
          q.output,
          MS_DOMAIN,
        );
      }
      count(`Q${n.opType === "Add" ? "LinearAdd" : `Linear${n.opType}`}`);
      take(n, ...q.nodes);
      continue;
    }
    if (PASS_THROUGH.has(n.opType)) {
      const d = dqOf(n.inputs[0]!);
      if (!d || (n.opType === "MaxPool" && n.outputs.length > 1 && n.outputs[1])) continue;
      const q = qAfter(n.outputs[0]!);
      if (q?.nodes.length !== 1 || !same(q.scale, d.scale) || !same(q.zeroPoint, d.zeroPoint)) continue;
      emit(n.opType, [d.x, ...n.inputs.slice(1)], { ...n.attrs }, name, q.output);
      count(n.opType);
      take(n, ...q.nodes);
    }
  }
  g.nodes = [...g.nodes.filter((x) => !removed.has(x)), ...added];
  g.invalidate();
  // drop what no one reads any more (DequantizeLinear nodes whose readers became integer ops)
  for (let changed = true; changed; ) {
    changed = false;
    consumers = g.consumers();
    const before = g.nodes.length;
    g.nodes = g.nodes.filter((x) =>
      x.outputs.some((o) => o && (outputs.has(o) || (consumers.get(o)?.length ?? 0) > 0)),
    );
    changed = g.nodes.length !== before;
  }
  sortGraph(g);
  dropUnused(g);
  return { graph: g, report };
}

function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.dims as [number, number];
  const src = t.data as Int8Array | Uint8Array;
  const out = new (src.constructor as Int8ArrayConstructor)(src.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j]!;
  return { dtype: t.dtype, dims: [c, r], data: out };
}
