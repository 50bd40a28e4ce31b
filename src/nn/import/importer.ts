/**
 * A float ONNX model from another framework (PyTorch, TensorFlow, CNTK) as a qat NetModel, ready for the training
 * step: the opset is brought to 17, float16 widened, Constant nodes made initializers, a fixed batch made dynamic,
 * weights split into trainable and frozen, BatchNormalization switched to training mode with PyTorch's running
 * statistics, and the evaluation graph kept as the model computes.
 */
import { basename } from "node:path";
import { loadModel } from "../../onnx/codec.js";
import { cloneGraph, type Graph, type Model, sortGraph, type ValueInfo } from "../../onnx/ir.js";
import { normalizeOpset, WORKING_OPSET } from "../../onnx/opset.js";
import { inferShapes } from "../../onnx/shapes.js";
import { numel, type Tensor, tensor, widen } from "../../onnx/tensor.js";
import { Rng } from "../../util/rng.js";
import type { NetModel } from "../model.js";
import { makeBatchDynamic } from "./batch.js";
import { type BatchNormResult, trainBatchNorm } from "./batchnorm.js";
import { foldBiasAdds } from "./bias.js";
import { applyInputConvention, type InputConvention, inputLayout } from "./convention.js";
import { ImportError } from "./errors.js";
import { type FlatOutputs, flattenOutputs } from "./outputs.js";
import { opTable, type ParamSplit, splitParams } from "./params.js";
import type { ImportReport } from "./report.js";

export type { InputConvention } from "./convention.js";

export interface ImportOptions {
  /** What the model expects to be fed, from the dataset's stored values. Default: the stored values as they are. */
  input?: InputConvention;
  /** The output holding the class scores. Default: the first graph output. */
  output?: string;
  /**
   * "classifier" (default): train one [batch, classes] output, the others left out. "all": keep every output as
   * the file has it (names, shapes, layout: a drop-in replacement for detectors, keypoint and segmentation models);
   * the training graph then reads all of them, flattened per sample and concatenated (see outputs.ts).
   */
  outputs?: "classifier" | "all";
  /** The model's name (default: the file name without .onnx). */
  name?: string;
  /** PyTorch momentum of BN running statistics. Default: from the file (1 − ONNX momentum; 0.1 for the default). */
  batchNormMomentum?: number;
  /** Run Dropout in the training graph (default true, as PyTorch's train mode). */
  dropout?: boolean;
  /** Seed of the Dropout masks. */
  seed?: number;
}

export interface ImportResult {
  net: NetModel;
  report: ImportReport;
}

/** Import a float ONNX model file for training. Errors name the file and the node. */
export function importModel(path: string, opts: ImportOptions = {}): ImportResult {
  return importOnnx(
    loadModel(path),
    { ...opts, name: opts.name ?? basename(path).replace(/\.onnx$/i, "") },
    path,
  );
}

/** Import a decoded model (it is modified in place: pass a copy to keep the original). */
export function importOnnx(model: Model, opts: ImportOptions = {}, file?: string): ImportResult {
  const g = model.graph;
  const producer = [model.producerName, model.producerVersion].filter(Boolean).join(" ");
  const from = model.opsets[""] ?? model.opsets["ai.onnx"] ?? 1;
  const widened = widenHalf(model);
  normalizeOpset(model);

  const all = opts.outputs === "all";
  const { input, out, droppedOutputs } = selectInputOutput(g, opts.output, all, file);
  const fileDtype = widened.inputDtype ?? input.dtype ?? "unknown";
  const batch = makeBatchDynamic(g, input.name, all ? g.outputs.map((o) => o.name) : out.name, file);
  const output = all ? out.name : flattenOutput(g, out.name, file);
  const ops = opTable(g); // the model's own ops, before bias folds and any input convention change them
  const biasFolds = foldBiasAdds(g);
  const sample = input.shape?.slice(1) ?? [];
  if (!input.shape || !sample.every((d) => typeof d === "number")) {
    throw new ImportError(
      `input '${input.name}' needs a fixed shape but for the batch, got [${input.shape}]`,
      {
        file,
        value: input.name,
      },
    );
  }
  const evalGraph = g;
  evalGraph.name = evalGraph.name || opts.name || "imported";

  const { train, softmaxTail, dropout, bn, flat } = trainingGraph(evalGraph, output, opts, file);
  const trained = flat?.name ?? output;
  const classes = flat ? flat.size : classCount(evalGraph, output, file);
  const split = splitParams(train, trained, new Set(bn.buffers), file);
  const net: NetModel = {
    name: opts.name ?? (evalGraph.name || "imported"),
    train,
    eval: evalGraph,
    input: input.name,
    inputShape: sample as number[],
    output: trained,
    params: split.trainable,
    buffers: bn.buffers,
    updates: bn.updates,
  };
  const layout = opts.input?.layout ?? inputLayout(evalGraph, input.name, input.shape);
  const convention = applyInputConvention(net, opts.input, layout, file);
  for (const gr of [net.train, net.eval]) {
    gr.invalidate();
    inferShapes(gr);
  }

  const blocking = new Set(split.blocking.map((b) => b.opType));
  const report: ImportReport = {
    file,
    producer,
    opset: { from, to: WORKING_OPSET },
    input: { name: input.name, dtype: fileDtype, sampleShape: sample as number[], layout },
    output: { name: trained, classes },
    outputs: flat?.parts ?? null,
    batch,
    biasFolds,
    inputConvention: convention,
    widened: { tensors: widened.tensors, casts: widened.casts },
    ops: ops.map(({ opType, count, trainable }) => ({ opType, count, trainable })),
    opsTrainable: ops.filter((o) => o.trainable).map((o) => o.opType),
    opsKeptInFloat: ops
      .filter((o) => !o.trainable)
      .map((o) => ({ opType: o.opType, nodes: o.nodes, blocking: blocking.has(o.opType) })),
    quantizedTensors: quantized(evalGraph),
    params: paramsReport(train, split),
    batchNorm: bn.layers,
    batchNormKept: bn.kept,
    buffers: bn.buffers,
    dropout,
    softmaxTail,
    droppedOutputs,
  };
  return { net, report };
}

/**
 * The one float input and the class-score output (`output`, or the first); the graph keeps only that output, and
 * the others' names are returned for the report.
 */
function selectInputOutput(
  g: Graph,
  output: string | undefined,
  all: boolean,
  file: string | undefined,
): { input: ValueInfo; out: ValueInfo; droppedOutputs: string[] } {
  const inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  if (inputs.length !== 1) {
    throw new ImportError(
      `qat trains models with one input; this one has ${inputs.length} (${inputs.map((v) => v.name).join(", ")})`,
      { file },
    );
  }
  const input = inputs[0]!;
  if (input.dtype !== "float32") {
    throw new ImportError(
      `input '${input.name}' is ${input.dtype ?? "of unknown type"}; qat trains models with a float input`,
      {
        file,
        value: input.name,
      },
    );
  }
  const outputName = output ?? g.outputs[0]?.name;
  const out = g.outputs.find((o) => o.name === outputName);
  if (!out)
    throw new ImportError(`the model has no output named '${outputName}'`, { file, value: outputName });
  if (all) return { input, out, droppedOutputs: [] };
  const droppedOutputs = g.outputs.filter((o) => o !== out).map((o) => o.name);
  g.outputs = [out];
  return { input, out, droppedOutputs };
}

/**
 * The training graph: logits before a final Softmax, Dropout on, BatchNormalization on batch statistics. With
 * `outputs: "all"`, every output is kept (no Softmax bypassed) and read through one flat value (`flat`).
 */
function trainingGraph(
  evalGraph: Graph,
  output: string,
  opts: ImportOptions,
  file: string | undefined,
): {
  train: Graph;
  softmaxTail: string | null;
  dropout: string[];
  bn: BatchNormResult;
  flat: FlatOutputs | null;
} {
  const train = cloneGraph(evalGraph);
  const all = opts.outputs === "all";
  const flat = all ? flattenOutputs(train, file) : null;
  const softmaxTail = all ? null : bypassSoftmax(train, output);
  const dropout = opts.dropout === false ? [] : activateDropout(train, opts.seed ?? 0);
  const bn = trainBatchNorm(train, { momentum: opts.batchNormMomentum, file });
  sortGraph(train);
  train.invalidate();
  inferShapes(train);
  return { train, softmaxTail, dropout, bn, flat };
}

/** The number of classes of a [batch, classes] output. */
function classCount(g: Graph, output: string, file: string | undefined): number {
  const shape = g.valueInfo.get(output)?.shape ?? g.outputs.find((o) => o.name === output)?.shape;
  const classes = shape?.[1];
  if (typeof classes !== "number")
    throw new ImportError(`output '${output}' has no fixed number of classes ([${shape}])`, {
      file,
      value: output,
    });
  return classes;
}

/** The trainable parameters (with their shapes) and the frozen tensors that are not also trainable, with counts. */
function paramsReport(train: Graph, split: ParamSplit): ImportReport["params"] {
  const trainableSet = new Set(split.trainable);
  return {
    trainable: split.trainable.map((p) => {
      const t = train.initializers.get(p)!;
      return { name: p, dims: [...t.dims], numel: numel(t.dims) };
    }),
    frozen: split.frozen.filter((f) => !trainableSet.has(f.name)),
    trainableCount: split.trainable.reduce((a, p) => a + numel(train.initializers.get(p)!.dims), 0),
    frozenCount: split.frozen.reduce((a, f) => a + f.numel, 0),
  };
}

/** float16/bfloat16 → float32 everywhere: initializers, Constant values, value types, Casts. */
function widenHalf(model: Model): { tensors: number; casts: string[]; inputDtype?: string } {
  const g = model.graph;
  let tensors = 0;
  const half = (d?: string) => d === "float16" || d === "bfloat16";
  const w = (t: Tensor): Tensor => {
    if (!half(t.dtype)) return t;
    tensors++;
    return widen(t);
  };
  for (const [k, t] of g.initializers) g.initializers.set(k, w(t));
  const casts: string[] = [];
  for (const n of g.nodes) {
    for (const a of Object.values(n.attrs)) if (a.type === "tensor") a.value = w(a.value);
    if (
      n.opType === "Cast" &&
      n.attrs.to?.type === "int" &&
      (n.attrs.to.value === 10 || n.attrs.to.value === 16)
    ) {
      n.attrs = { ...n.attrs, to: { type: "int", value: 1 } };
      casts.push(n.name);
    }
  }
  const firstInput = g.inputs.find((v) => !g.initializers.has(v.name));
  const inputDtype = firstInput?.dtype;
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo.values()])
    if (half(v.dtype)) v.dtype = "float32";
  return { tensors, casts, inputDtype };
}

/** An output [batch, classes, 1, …] becomes [batch, classes] through a Flatten, under the same name. */
function flattenOutput(g: Graph, output: string, file?: string): string {
  const shape = g.valueInfo.get(output)?.shape ?? g.outputs.find((o) => o.name === output)?.shape;
  if (!shape || shape.length === 2) return output;
  if (shape.length < 2 || shape.slice(2).some((d) => d !== 1)) {
    throw new ImportError(
      `output '${output}' is [${shape}]; qat trains classifiers with [batch, classes] outputs`,
      { file, value: output },
    );
  }
  const inner = g.uniqueName(`${output}_unflattened`);
  for (const n of g.nodes) {
    n.outputs = n.outputs.map((o) => (o === output ? inner : o));
    n.inputs = n.inputs.map((i) => (i === output ? inner : i));
  }
  g.op("Flatten", [inner], { axis: 1 }, { name: `${output}_flatten`, output });
  const o = g.outputs.find((v) => v.name === output)!;
  o.shape = [shape[0]!, shape[1]!];
  g.valueInfo.delete(output);
  inferShapes(g);
  return output;
}

/** A Softmax whose output only reaches the model output through shape ops becomes an Identity (training only). */
function bypassSoftmax(g: Graph, output: string): string | null {
  const producers = g.producers();
  const consumers = g.consumers();
  const passThrough = new Set(["Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze"]);
  let v = output;
  for (;;) {
    const p = producers.get(v);
    if (!p) return null;
    if (p.opType === "Softmax" && (p.domain === "" || p.domain === "ai.onnx")) {
      if ((consumers.get(p.outputs[0]!) ?? []).length > 1) return null;
      const name = p.name;
      p.opType = "Identity";
      p.attrs = {};
      return name;
    }
    if (!passThrough.has(p.opType) || (consumers.get(v) ?? []).length > 1) return null;
    v = p.inputs[0]!;
  }
}

/** Dropout nodes run in training mode with a seeded mask in the training graph. */
function activateDropout(g: Graph, seed: number): string[] {
  const rng = new Rng(seed);
  const on: string[] = [];
  for (const n of g.nodes) {
    if (n.opType !== "Dropout" || (n.domain !== "" && n.domain !== "ai.onnx")) continue;
    if (n.inputs[2]) continue; // the file decides its mode
    const ratio = n.inputs[1] || g.constant(`${n.name}.ratio`, tensor("float32", [], [0.5]));
    const mode = g.constant(`${n.name}.training`, tensor("bool", [], [1]));
    n.inputs = [n.inputs[0]!, ratio, mode];
    n.attrs = {
      ...n.attrs,
      seed: { type: "int", value: rng.fork(`dropout:${n.name}`).nextU32() & 0x7fffffff },
    };
    on.push(n.name);
  }
  return on;
}

/** Integer tensors a quantized model holds (QuantizeLinear outputs and 8/4-bit initializers). */
function quantized(g: Graph): string[] {
  const out: string[] = [];
  for (const [k, t] of g.initializers) if (["int8", "uint8", "int4", "uint4"].includes(t.dtype)) out.push(k);
  for (const n of g.nodes) if (n.opType === "QuantizeLinear") out.push(n.outputs[0]!);
  return out;
}
