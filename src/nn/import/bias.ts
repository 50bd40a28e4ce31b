/**
 * Biases added after the layer, as exporters of older frameworks write them (CNTK's mnist-8: Conv then Add of an
 * [8,1,1] constant; MatMul then Add of [1,10]), become the layer's own bias: Conv gets the bias input, MatMul on a
 * 2-D input becomes Gemm. The model computes the same sums; what changes is what quantization sees — the int8
 * kernels add an int32 bias inside the layer, where a separate Add would quantize the bias to uint8 and requantize.
 */
import type { Graph, Node } from "../../onnx/ir.js";
import { inferShapes } from "../../onnx/shapes.js";
import { numel, type Tensor, tensor, toFloat32 } from "../../onnx/tensor.js";

export interface BiasFold {
  /** The Add node removed. */
  add: string;
  /** The layer that now adds the bias (a MatMul is replaced by a Gemm of the same name). */
  layer: string;
  op: "Conv" | "Gemm";
  bias: string;
}

/** Fold `layer → Add(constant)` into the layer's bias where the constant varies only along the output channels. */
export function foldBiasAdds(g: Graph): BiasFold[] {
  inferShapes(g);
  const folds: BiasFold[] = [];
  const outputs = new Set(g.outputs.map((o) => o.name));
  const consumers = g.consumers();
  const producers = g.producers();
  const removed = new Set<Node>();
  for (const add of g.nodes) {
    if (add.opType !== "Add" || add.domain !== "" || add.inputs.length !== 2) continue;
    for (const side of [0, 1]) {
      const y = add.inputs[side]!;
      const b = add.inputs[1 - side]!;
      const layer = producers.get(y);
      const bt = g.initializers.get(b);
      if (!layer || !bt || bt.dtype !== "float32" || outputs.has(y)) continue;
      if ((consumers.get(y) ?? []).length !== 1 || (consumers.get(b) ?? []).length !== 1) continue;
      const old = layer.inputs[2];
      if (old && (!g.initializers.has(old) || (consumers.get(old) ?? []).length !== 1)) continue;
      if (layer.opType === "Conv" && layer.domain === "") {
        const w = g.initializers.get(layer.inputs[1]!);
        const rank = g.valueInfo.get(y)?.shape?.length;
        if (!w || !rank || !channelOnly(bt.dims, rank, w.dims[0]!)) continue;
        setBias(g, layer, b, bt, w.dims[0]!);
        folds.push({ add: add.name, layer: layer.name, op: "Conv", bias: b });
      } else if (layer.opType === "MatMul" && layer.domain === "") {
        const w = g.initializers.get(layer.inputs[1]!);
        const a = g.valueInfo.get(layer.inputs[0]!)?.shape;
        if (!w || w.dims.length !== 2 || a?.length !== 2 || !channelOnly(bt.dims, 2, w.dims[1]!)) continue;
        layer.opType = "Gemm";
        layer.attrs = {};
        setBias(g, layer, b, bt, w.dims[1]!);
        folds.push({ add: add.name, layer: layer.name, op: "Gemm", bias: b });
      } else continue;
      layer.outputs[0] = add.outputs[0]!;
      g.valueInfo.delete(y);
      removed.add(add);
      break;
    }
  }
  if (removed.size) {
    g.nodes = g.nodes.filter((n) => !removed.has(n));
    g.invalidate();
    inferShapes(g);
  }
  return folds;
}

/** A bias broadcast against an output of `rank` dims that varies along axis 1 only, with `channels` values. */
function channelOnly(dims: number[], rank: number, channels: number): boolean {
  if (numel(dims) !== channels || dims.length > rank || dims.length < rank - 1) return false;
  return dims.every((d, j) => (rank - dims.length + j === 1 ? d === channels : d === 1));
}

/** The layer's bias becomes `name` as a [C] tensor, plus the bias it had. */
function setBias(g: Graph, layer: Node, name: string, t: Tensor, channels: number): void {
  const v = toFloat32(t).slice();
  const old = layer.inputs[2] ? g.initializers.get(layer.inputs[2]) : undefined;
  if (old) {
    g.initializers.delete(layer.inputs[2]!);
    const o = toFloat32(old);
    for (let c = 0; c < channels; c++) v[c] = Math.fround(v[c]! + o[c]!);
  }
  g.initializers.set(name, tensor("float32", [channels], v));
  layer.inputs = [layer.inputs[0]!, layer.inputs[1]!, name];
}
