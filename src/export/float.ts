import { cloneGraph, type Graph, type Node } from "../onnx/ir.js";
import { constantNodes, evaluateConstants } from "./constants.js";
import { dropUnused } from "./qdq.js";

/**
 * The float twin of a fake-quant graph: every QuantizeLinear → [Clip] → DequantizeLinear and every int32 bias
 * fake-quant Round(b / s)·s bypassed, the weight folding evaluated. The same network, without quantization: what
 * the exported int8 model is compared with for file size and latency.
 */
export async function floatTwin(sim: Graph): Promise<Graph> {
  const g = cloneGraph(sim);
  g.valueInfo = new Map();
  const producers = g.producers();
  const replace = new Map<string, string>();
  for (const n of g.nodes) {
    if (n.opType === "DequantizeLinear") {
      let p: Node | undefined = producers.get(n.inputs[0]!);
      if (p?.opType === "Clip") p = producers.get(p.inputs[0]!);
      if (p?.opType === "QuantizeLinear") replace.set(n.outputs[0]!, p.inputs[0]!);
    } else if (n.opType === "Mul") {
      const round = producers.get(n.inputs[0]!);
      const div = round?.opType === "Round" ? producers.get(round.inputs[0]!) : undefined;
      if (div?.opType === "Div" && div.inputs[1] === n.inputs[1]) replace.set(n.outputs[0]!, div.inputs[0]!);
    }
  }
  const resolve = (v: string): string => {
    while (replace.has(v)) v = replace.get(v)!;
    return v;
  };
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i ? resolve(i) : i));
  for (const o of g.outputs) {
    const r = resolve(o.name);
    if (r !== o.name) g.op("Identity", [r], {}, { name: `${o.name}.float`, output: o.name });
  }
  pruneUnread(g);
  const consts = constantNodes(g);
  const producers2 = g.producers();
  const boundary = new Set<string>();
  for (const n of g.nodes) {
    if (consts.has(n)) continue;
    for (const i of n.inputs) {
      const p = i ? producers2.get(i) : undefined;
      if (p && consts.has(p)) boundary.add(i);
    }
  }
  const vals = await evaluateConstants(g, consts, [...boundary]);
  g.nodes = g.nodes.filter((n) => !consts.has(n));
  for (const [k, t] of vals) g.initializers.set(k, t);
  dropUnused(g);
  return g;
}

function pruneUnread(g: Graph): void {
  const outs = new Set(g.outputs.map((o) => o.name));
  for (let changed = true; changed; ) {
    const read = new Set(g.nodes.flatMap((n) => n.inputs));
    const before = g.nodes.length;
    g.nodes = g.nodes.filter((n) => n.outputs.some((o) => o && (read.has(o) || outs.has(o))));
    changed = before !== g.nodes.length;
  }
  g.invalidate();
}
