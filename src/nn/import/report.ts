import type { BatchReport } from "./batch.js";
import type { BatchNormInfo } from "./batchnorm.js";
import type { BiasFold } from "./bias.js";
import type { AppliedConvention, InputLayout } from "./convention.js";
import type { OutputPart } from "./outputs.js";
import type { FrozenTensor } from "./params.js";

/** What importing a model did and what it will train: printed by `qat import` and written to a run's import.json. */
export interface ImportReport {
  file?: string;
  producer: string;
  /** The file's ai.onnx opset and the working opset it was brought to. */
  opset: { from: number; to: number };
  /** `layout`: where the input's channels are (the convention's per-channel values go on that axis). */
  input: { name: string; dtype: string; sampleShape: number[]; layout: InputLayout };
  /** The value training reads, [batch, classes] (with `outputs`, the flat concatenation of all outputs). */
  output: { name: string; classes: number };
  /** With `outputs: "all"`: the model's outputs as the file names and shapes them, and where each lies in `output`. */
  outputs: OutputPart[] | null;
  batch: BatchReport;
  /** Adds of a constant after a Conv/MatMul folded into the layer's bias (MatMul became Gemm). */
  biasFolds: BiasFold[];
  /** Input convention put in front of the model: it is fed (stored value · scale − mean) / std. */
  inputConvention: AppliedConvention | null;
  /** float16/bfloat16 tensors widened to float32 (weights, constants), and Casts to float16 made float32 Casts. */
  widened: { tensors: number; casts: string[] };
  /** Op types of the (evaluation) graph; `trainable`: qat has a gradient rule for it. */
  ops: { opType: string; count: number; trainable: boolean }[];
  opsTrainable: string[];
  /** Op types without a gradient rule: they stay float and frozen; `blocking` ones stand before weights. */
  opsKeptInFloat: { opType: string; nodes: string[]; blocking: boolean }[];
  /** Quantized tensors of the model (none for a float import). */
  quantizedTensors: string[];
  params: {
    trainable: { name: string; dims: number[]; numel: number }[];
    frozen: FrozenTensor[];
    trainableCount: number;
    frozenCount: number;
  };
  batchNorm: BatchNormInfo[];
  /** BN nodes left in inference mode, and why. */
  batchNormKept: { node: string; reason: string }[];
  buffers: string[];
  /** Dropout nodes active (seeded) in the training graph. */
  dropout: string[];
  /** A Softmax the model ends with: training reads its input (logits); the evaluation graph keeps it. */
  softmaxTail: string | null;
  /** Graph outputs other than the trained one, left out of the imported model. */
  droppedOutputs: string[];
}

const n = (v: number) => v.toLocaleString("en-US");
const plural = (k: number, one: string, many = `${one}s`) => `${n(k)} ${k === 1 ? one : many}`;

/** The human form of an import report. */
export function formatImportReport(r: ImportReport): string {
  const lines: string[] = [];
  lines.push(
    `${r.file ?? "model"} (${r.producer || "unknown producer"}), opset ${r.opset.from} → ${r.opset.to}`,
  );
  lines.push(
    `input   ${r.input.name}  ${r.input.dtype}  [batch, ${r.input.sampleShape.join(", ")}]  ${r.input.layout.toUpperCase()}`,
  );
  for (const o of r.outputs ?? [])
    lines.push(
      `output  ${o.name}  [${o.shape.join(", ")}]  (trained at [${o.offset}, ${o.offset + o.size}) of '${r.output.name}')`,
    );
  if (!r.outputs)
    lines.push(
      `output  ${r.output.name}  [batch, ${r.output.classes}]${r.softmaxTail ? `  (trained on the logits before Softmax '${r.softmaxTail}')` : ""}`,
    );
  if (r.batch.kind === "dynamic") lines.push(`batch   dynamic ('${r.batch.dim}')`);
  else {
    lines.push(`batch   fixed at ${r.batch.fixed} in the file, made dynamic`);
    for (const s of r.batch.reshapes)
      lines.push(`        Reshape '${s.node}': [${s.from.join(", ")}] → [${s.to.join(", ")}]`);
    for (const p of r.batch.constantPads)
      lines.push(`        Concat '${p.node}' with constant ${p.value}s on axis ${p.axis} → Pad`);
  }
  const c = r.inputConvention;
  lines.push(
    c
      ? `input convention: (x · ${c.scale} − [${c.mean.join(", ")}]) / [${c.std.join(", ")}] is fed to the model (channels ${c.layout === "nhwc" ? "last" : "first"})`
      : "input convention: none (the model is fed the dataset's stored values)",
  );
  if (r.widened.tensors || r.widened.casts.length) {
    lines.push(
      `float16 → float32: ${plural(r.widened.tensors, "tensor")}${r.widened.casts.length ? `, ${plural(r.widened.casts.length, "Cast")}` : ""}`,
    );
  }
  for (const f of r.biasFolds)
    lines.push(`bias    Add '${f.add}' folded into ${f.op} '${f.layer}' (bias '${f.bias}')`);
  if (r.droppedOutputs.length) lines.push(`outputs left out: ${r.droppedOutputs.join(", ")}`);
  lines.push("");
  lines.push(
    `ops: ${plural(
      r.ops.reduce((a, o) => a + o.count, 0),
      "node",
    )}`,
  );
  const w = Math.max(...r.ops.map((o) => o.opType.length), 8);
  for (const o of r.ops)
    lines.push(
      `  ${o.opType.padEnd(w)}  ${String(o.count).padStart(4)}  ${o.trainable ? "trainable" : "kept in float"}`,
    );
  if (r.opsKeptInFloat.length === 0) lines.push("every op can be trained through");
  for (const k of r.opsKeptInFloat) {
    lines.push(
      `kept in float: ${k.opType} (${k.nodes.join(", ")})${k.blocking ? ": the weights before it are frozen" : ""}`,
    );
  }
  lines.push(
    r.quantizedTensors.length
      ? `quantized in the file: ${r.quantizedTensors.join(", ")}`
      : "quantized in the file: none (a float model; --qat lists what QAT quantizes)",
  );
  lines.push("");
  const p = r.params;
  lines.push(
    `parameters: ${n(p.trainableCount)} trainable in ${plural(p.trainable.length, "tensor")}, ${n(p.frozenCount)} frozen in ${plural(p.frozen.length, "tensor")}`,
  );
  for (const f of p.frozen) lines.push(`  frozen ${f.name} [${f.dims.join(", ")}]: ${f.reason}`);
  if (r.batchNorm.length) {
    const m = [...new Set(r.batchNorm.map((b) => b.momentum))].join("/");
    lines.push(
      `BatchNormalization: ${plural(r.batchNorm.length, "layer")} in training mode (momentum ${m}, unbiased running variance)`,
    );
  }
  for (const k of r.batchNormKept) lines.push(`BatchNormalization '${k.node}': ${k.reason}`);
  if (r.dropout.length) lines.push(`Dropout active in training: ${r.dropout.join(", ")}`);
  return lines.join("\n");
}
