import type { Graph } from "../onnx/ir.js";
import { f32 } from "../onnx/tensor.js";
import type { NetModel } from "./model.js";

/**
 * Put input normalisation inside the model: a new input of the same name takes values as the dataset stores them
 * (e.g. 0–255 pixels) and `(x − mean) · (1/std)` per channel feeds what the network had as its input. Both the train
 * and the eval graph get it, so an exported model needs nothing but the file.
 */
export function prependNormalization(net: NetModel, mean: number[], std: number[]): void {
  const c = net.inputShape[0]!;
  if (mean.length !== c && mean.length !== 1) {
    throw new Error(`normalisation has ${mean.length} means for ${c} input channels`);
  }
  const broadcast =
    net.inputShape.length > 1 ? [mean.length, ...net.inputShape.slice(1).map(() => 1)] : [mean.length];
  for (const g of [net.train, net.eval]) insert(g, net.input, mean, std, broadcast);
}

function insert(g: Graph, input: string, mean: number[], std: number[], dims: number[]): void {
  const raw = g.uniqueName(`${input}_normalized`);
  // the network now reads `raw`; the graph input keeps its name and feeds the normalisation
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === input ? raw : i));
  const m = g.constant("input.mean", f32(dims, mean));
  const s = g.constant(
    "input.inv_std",
    f32(
      dims,
      std.map((v) => 1 / (v > 0 ? v : 1)),
    ),
  );
  const centered = g.op("Sub", [input, m], {}, { name: "normalize_sub" });
  g.op("Mul", [centered, s], {}, { name: "normalize_mul", output: raw });
  // move the two new nodes to the front so the graph stays in topological order
  g.nodes.unshift(...g.nodes.splice(-2, 2));
}
