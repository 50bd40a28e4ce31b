/**
 * BatchNormalization of an imported (inference) graph switched to training mode, with the same semantics as the
 * zoo models' `NetBuilder.batchNorm2d`: the layer normalises with the batch's statistics, and the running
 * statistics are updated as PyTorch does, r ← (1−m)·r + m·batch with the variance unbiased by n/(n−1). The running
 * statistics become buffers, plus a `num_batches_tracked` counter in the training graph only, so a training step
 * treats an imported model and a zoo model alike.
 */
import { attr, attrFloat, type Graph } from "../../onnx/ir.js";
import { f32, i64 } from "../../onnx/tensor.js";
import { ImportError } from "./errors.js";

export interface BatchNormInfo {
  node: string;
  /** PyTorch momentum of the running statistics (1 − the ONNX momentum attribute). */
  momentum: number;
  epsilon: number;
  runningMean: string;
  runningVar: string;
  numBatchesTracked: string;
}

export interface BatchNormResult {
  layers: BatchNormInfo[];
  /** BN nodes kept in inference mode, and why. */
  kept: { node: string; reason: string }[];
  buffers: string[];
  updates: Map<string, string>;
}

/**
 * Switch every inference-mode BatchNormalization of `g` (the training graph) to training mode, in place. `momentum`
 * overrides the file's (PyTorch convention; default: 1 − the ONNX attribute, i.e. 0.1 for the ONNX default 0.9).
 */
export function trainBatchNorm(g: Graph, opts: { momentum?: number; file?: string } = {}): BatchNormResult {
  const result: BatchNormResult = { layers: [], kept: [], buffers: [], updates: new Map() };
  const bns = g.nodes.filter(
    (n) => n.opType === "BatchNormalization" && (n.domain === "" || n.domain === "ai.onnx"),
  );
  for (const n of bns) {
    if (
      (n.attrs.training_mode?.type === "int" && n.attrs.training_mode.value === 1) ||
      n.outputs.length > 1
    ) {
      result.kept.push({ node: n.name, reason: "already in training mode in the file" });
      continue;
    }
    const [x, , , rm, rv] = n.inputs as [string, string, string, string, string];
    const mean = g.initializers.get(rm);
    const variance = g.initializers.get(rv);
    if (!mean || !variance || mean.dtype !== "float32" || variance.dtype !== "float32") {
      result.kept.push({
        node: n.name,
        reason: "its running statistics are computed, not stored: kept in inference mode",
      });
      continue;
    }
    for (const s of [rm, rv]) {
      const other = g.nodes.find((m) => m !== n && m.inputs.includes(s));
      if (other) {
        throw new ImportError(
          `running statistic '${s}' of BatchNormalization '${n.name}' is also read by '${other.name}'`,
          {
            file: opts.file,
            node: other.name,
            opType: other.opType,
          },
        );
      }
    }
    const xShape = g.valueInfo.get(x)?.shape ?? g.inputs.find((v) => v.name === x)?.shape;
    const rank = xShape?.length;
    if (rank === undefined || rank < 2) {
      throw new ImportError(
        `the rank of its input '${x}' is unknown; qat needs it to compute batch statistics`,
        {
          file: opts.file,
          node: n.name,
          opType: n.opType,
        },
      );
    }
    const c = mean.dims[0]!;
    const eps = attrFloat(n, "epsilon", 1e-5);
    // the attribute is a float32 (0.9 → 0.89999998): 7 significant digits give PyTorch's 0.1 back
    const m = opts.momentum ?? Number((1 - attrFloat(n, "momentum", 0.9)).toPrecision(7));
    const prefix = rm.endsWith(".running_mean") ? rm.slice(0, -".running_mean".length) : n.name;
    const nbt = g.uniqueName(`${prefix}.num_batches_tracked`);
    g.initializers.set(nbt, i64([], [0]));

    // the node normalises with the batch statistics; ONNX momentum 1 keeps its running outputs equal to its inputs
    // (ORT writes them in place of the inputs the update below reads), as NetBuilder.batchNorm2d does
    n.attrs = { ...n.attrs, epsilon: attr.float(eps), momentum: attr.float(1), training_mode: attr.int(1) };
    n.outputs = [
      n.outputs[0]!,
      g.uniqueName(`${n.name}_running_mean_out`),
      g.uniqueName(`${n.name}_running_var_out`),
    ];

    const op = (type: string, inputs: string[], attrs = {}, output?: string): string =>
      g.op(type, inputs, attrs, { name: `${n.name}_stats_${type}`, ...(output ? { output } : {}) });
    const k = (base: string, v: number): string => g.constant(`${prefix}.${base}`, f32([], [v]));
    const axes = { axes: [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)], keepdims: 1 };
    const mu = op("ReduceMean", [x], axes);
    const centred = op("Sub", [x, mu]);
    const varB4 = op("ReduceMean", [op("Mul", [centred, centred])], axes);
    const flat = g.constant(`${prefix}.stat_shape`, i64([1], [c]));
    const batchMean = op("Reshape", [mu, flat]);
    const batchVar = op("Reshape", [varB4, flat]);
    const count = op("Div", [op("Cast", [op("Size", [x])], { to: 1 }), k("channels", c)]);
    const unbias = op("Div", [count, op("Sub", [count, k("one", 1)])]);
    const keep = k("keep", 1 - m);
    const mom = k("momentum", m);
    const mix = (old: string, batch: string, out: string): string =>
      op("Add", [op("Mul", [old, keep]), op("Mul", [batch, mom])], {}, g.uniqueName(out));
    result.updates.set(rm, mix(rm, batchMean, `${rm}.next`));
    result.updates.set(rv, mix(rv, op("Mul", [batchVar, unbias]), `${rv}.next`));
    result.updates.set(
      nbt,
      op("Add", [nbt, g.constant(`${prefix}.nbt_one`, i64([], [1]))], {}, g.uniqueName(`${nbt}.next`)),
    );
    result.buffers.push(rm, rv, nbt);
    result.layers.push({
      node: n.name,
      momentum: m,
      epsilon: eps,
      runningMean: rm,
      runningVar: rv,
      numBatchesTracked: nbt,
    });
  }
  for (const [buf, next] of result.updates) {
    const t = g.initializers.get(buf)!;
    g.outputs.push({ name: next, dtype: t.dtype, shape: [...t.dims] });
  }
  return result;
}
