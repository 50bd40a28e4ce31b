import type { Dataset } from "../data/dataset.js";
import { encodeModel, modelOf } from "../onnx/codec.js";
import { attrInt, type Graph, type Model } from "../onnx/ir.js";
import { WORKING_OPSET } from "../onnx/opset/working.js";
import { type Tensor, toFloat32 } from "../onnx/tensor.js";
import { writeFileAtomic } from "../util/atomic.js";
import { ExportError } from "./errors.js";
import { floatTwin } from "./float.js";
import { measureLatency } from "./latency.js";
import { checkParity, type ParityReport, type ParityThresholds } from "./parity.js";
import { buildQdq, dropUnused, outputStep } from "./qdq.js";
import { MS_DOMAIN, type QOperatorReport, toQOperator } from "./qoperator.js";
import { loadQatSource, type QatSource } from "./source.js";
import { checkTensorRt, type StructuralIssue, tensorRtQConfigIssues } from "./tensorrt.js";

export type ExportFormat = "qdq" | "qoperator";
export type ExportTarget = "ort-cpu" | "ort-arm" | "tensorrt";
export const FORMATS: ExportFormat[] = ["qdq", "qoperator"];
export const TARGETS: ExportTarget[] = ["ort-cpu", "ort-arm", "tensorrt"];

/** Metadata key of the exported model: qconfig, quantization parameters, source run, simulation and parity. */
export const EXPORT_META_KEY = "qat.export";

export interface ExportOptions {
  format?: ExportFormat;
  target?: ExportTarget;
  /** ai.onnx opset of the output (13–21; default 17, or 21 when there are 4-bit weights). */
  opset?: number;
  /** Evaluation set of the parity check (samples as the dataset stores them). */
  data: Dataset;
  /** At most this many samples in the parity check (0: all). */
  limit?: number;
  thresholds?: Partial<ParityThresholds>;
  threads?: number;
  /** Also measure ORT latency of the int8 and the float model at batch 1 and 64. */
  latency?: boolean;
}

export interface ExportResult {
  model: Model;
  bytes: Uint8Array;
  format: ExportFormat;
  target: ExportTarget;
  opset: number;
  parity: ParityReport;
  warnings: string[];
  /** Encoded sizes, bytes: the float twin (same network without quantization) and the int8 model. */
  sizes: { float: number; int8: number };
  latency?: {
    float: Record<string, number>;
    int8: Record<string, number>;
    threads: number | "all";
    config: string;
  };
  qoperator?: QOperatorReport;
  /** Weights stored as INT4. */
  int4Weights: string[];
}

const irFor = (opset: number) => (opset >= 21 ? 10 : opset >= 19 ? 9 : 8);

/**
 * Export a QAT checkpoint to an int8 ONNX model and check it against the simulation. The returned result says
 * whether the parity check passed; nothing is written here (see `exportToFile`).
 */
export async function exportCheckpoint(src: QatSource, opts: ExportOptions): Promise<ExportResult> {
  const format = opts.format ?? "qdq";
  const target = opts.target ?? "ort-cpu";
  checkRequest(src, format, target, opts.opset);
  const warnings: string[] = [];
  const qdq = await buildQdq(src, { biasAsFloat: target === "tensorrt" });
  for (const f of qdq.flippedScales) {
    warnings.push(
      `'${f.tensor}': the learned scale of ${f.channels} channel(s) is negative; exported as positive scales with negated integers (identical values)`,
    );
  }
  let g = qdq.graph;
  const int4 = storeInt4(g, src, opts.opset, warnings);
  let opset = int4.opset;
  if (target === "tensorrt" && opset < 13) opset = 13;

  let qoperator: QOperatorReport | undefined;
  if (format === "qoperator") {
    const q = toQOperator(g);
    g = q.graph;
    qoperator = q.report;
    if (q.report.float.length)
      warnings.push(`no integer op for ${q.report.float.join(", ")}: kept as QDQ around the float op`);
  }
  checkForTarget(g, target, opset, src.file, warnings);
  if (opset !== WORKING_OPSET) checkOpsetForms(g, opset, src.file);
  const opsets: Record<string, number> = { "": opset };
  if (g.nodes.some((n) => n.domain === MS_DOMAIN)) opsets[MS_DOMAIN] = 1;
  const model = modelOf(g, opsets);
  model.irVersion = irFor(opset);
  model.doc = `int8 model exported by qat from ${src.file}`;

  const simulation = modelOf(src.graph, { "": WORKING_OPSET });
  const parity = await checkParity(model, simulation, {
    data: opts.data,
    limit: opts.limit,
    threads: opts.threads,
    thresholds: opts.thresholds,
  });
  const twin = modelOf(await floatTwin(src.graph), { "": WORKING_OPSET });
  const floatBytes = encodeModel(twin);
  const latency = opts.latency ? await measureBoth(twin, model, opts) : undefined;
  model.metadata[EXPORT_META_KEY] = exportMetadata(g, src, {
    format,
    target,
    opset,
    data: opts.data,
    parity,
    warnings,
  });
  const bytes = encodeModel(model);
  return {
    model,
    bytes,
    format,
    target,
    opset,
    parity,
    warnings,
    sizes: { float: floatBytes.length, int8: bytes.length },
    latency,
    qoperator,
    int4Weights: int4.weights,
  };
}

/** Reject an unknown format or target, a format the target cannot take, an opset out of range, and a checkpoint
 * whose qconfig TensorRT cannot run as it was simulated — before any work is done. */
function checkRequest(
  src: QatSource,
  format: ExportFormat,
  target: ExportTarget,
  opset: number | undefined,
): void {
  if (!FORMATS.includes(format))
    throw new ExportError(`unknown format '${format}'; choose ${FORMATS.join(" or ")}`);
  if (!TARGETS.includes(target))
    throw new ExportError(`unknown target '${target}'; choose one of ${TARGETS.join(", ")}`);
  if (target === "tensorrt" && format !== "qdq") {
    throw new ExportError(
      "TensorRT takes QDQ models (explicit quantization): use --format qdq with --target tensorrt",
    );
  }
  if (opset !== undefined && (!Number.isInteger(opset) || opset < 13 || opset > 21)) {
    throw new ExportError(`--opset ${opset}: choose 13 to 21 (per-channel DequantizeLinear needs 13)`);
  }
  if (target === "tensorrt") {
    const issues = tensorRtQConfigIssues(src.placement);
    if (issues.length) {
      throw new ExportError(
        `the checkpoint was trained with qconfig '${src.qconfig.preset}', which TensorRT cannot run as simulated:\n` +
          issues.map((i) => `  ${i.tensor}: ${i.message}`).join("\n") +
          "\nRetrain with 'qat train --qat tensorrt' (int8 symmetric, narrow-range weights) and export that",
        { file: src.file },
      );
    }
  }
}

/**
 * 4-bit weights: INT4 initializers where the opset has them (21, the default when there are any), else int8 with a
 * warning. Returns the opset to export at and the weights stored as INT4.
 */
function storeInt4(
  g: Graph,
  src: QatSource,
  requested: number | undefined,
  warnings: string[],
): { opset: number; weights: string[] } {
  const four = src.placement.filter((r) => r.kind === "weight" && r.bits <= 4);
  const opset = requested ?? (four.length ? 21 : WORKING_OPSET);
  const weights: string[] = [];
  if (four.length) {
    if (opset < 21)
      warnings.push(
        `${four.length} layer(s) have ${four[0]!.bits}-bit weights; opset ${opset} has no INT4, so they are stored as int8 (use --opset 21 for INT4)`,
      );
    else {
      for (const r of four) weights.push(toInt4(g, r.node ?? r.layer, r.qmin, r.qmax, src.file));
      dropUnused(g);
    }
  }
  return { opset, weights };
}

/**
 * What the target's runtime needs of the model: TensorRT's explicit-quantization rules (a breach throws, exit 1),
 * and for ORT on x86 a warning when int8 weights are large enough to saturate its 16-bit pair sums.
 */
function checkForTarget(
  g: Graph,
  target: ExportTarget,
  opset: number,
  file: string,
  warnings: string[],
): void {
  if (target === "tensorrt") {
    const issues = checkTensorRt(g, opset);
    if (issues.length) {
      throw new ExportError(
        `the TensorRT-profile model breaks TensorRT's explicit-quantization rules:\n${formatIssues(issues)}`,
        { file },
        1,
      );
    }
  }
  if (target === "ort-cpu") {
    const risky = saturationRisk(g);
    if (risky.length) {
      warnings.push(
        `on x86 CPUs without VNNI, ORT's u8·s8 int8 kernels sum pairs of products in 16 bits and can saturate: ` +
          `weights of ${risky.join(", ")} exceed ±64. ARM boards and ORT with session.x64quantprecision=1 are exact ` +
          "(the parity check uses it); to be exact everywhere, retrain with --qat ort-cpu-x86-safe (7-bit weights)",
      );
    }
  }
}

/** ORT latency of the float twin and the int8 model at batch 1 and 64, one after the other. */
async function measureBoth(twin: Model, model: Model, opts: ExportOptions): Promise<ExportResult["latency"]> {
  const shape = opts.data.inputShape as number[];
  return {
    float: await measureLatency(twin, shape, [1, 64], { threads: opts.threads }),
    int8: await measureLatency(model, shape, [1, 64], { threads: opts.threads }),
    threads: opts.threads ?? "all",
    config: "ORT defaults (graph optimisation all)",
  };
}

/** The JSON stored under EXPORT_META_KEY: how the model was made, from what, and how it compared. */
function exportMetadata(
  g: Graph,
  src: QatSource,
  e: {
    format: ExportFormat;
    target: ExportTarget;
    opset: number;
    data: Dataset;
    parity: ParityReport;
    warnings: string[];
  },
): string {
  const { parity } = e;
  return JSON.stringify({
    format: e.format,
    target: e.target,
    opset: e.opset,
    source: { checkpoint: src.file, run: src.runDir ?? null, step: src.step ?? null },
    qconfig: src.qconfig,
    placement: src.placement,
    quantization: quantTable(g),
    output_steps: Object.fromEntries(
      g.outputs.map((o) => {
        const s = outputStep(g, o.name);
        return [o.name, s ? { kind: s.kind, axis: s.axis, scale: Array.from(s.scale) } : null];
      }),
    ),
    simulation: {
      dataset: e.data.name,
      samples: parity.samples,
      accuracy: parity.simulationAccuracy,
      run_test_accuracy: src.summaryAccuracy ?? null,
    },
    parity: {
      samples: parity.samples,
      agreement: parity.agreement,
      export_accuracy: parity.exportAccuracy,
      outputs: parity.outputs.map(({ worst: _w, ...o }) => o),
      passed: parity.passed,
      host_config: parity.hostConfig,
    },
    warnings: e.warnings,
  });
}

/**
 * `qat export`: read the checkpoint, export, check parity, and write `out` atomically only when every check passed.
 * A parity failure returns the result with `written: false` (the CLI exits 1); bad input throws ExportError.
 */
export async function exportToFile(
  source: string,
  out: string,
  opts: Omit<ExportOptions, "data"> & { data: Dataset | ((src: QatSource) => Promise<Dataset>) },
): Promise<ExportResult & { written: boolean; source: QatSource }> {
  const src = loadQatSource(source);
  const data = typeof opts.data === "function" ? await opts.data(src) : opts.data;
  const r = await exportCheckpoint(src, { ...opts, data });
  if (r.parity.passed) writeFileAtomic(out, r.bytes);
  return { ...r, written: r.parity.passed, source: src };
}

function formatIssues(issues: StructuralIssue[]): string {
  return issues
    .map(
      (i) =>
        `  ${[i.node && `node '${i.node}'`, i.tensor && `tensor '${i.tensor}'`].filter(Boolean).join(", ")}: ${i.message}`,
    )
    .join("\n");
}

/** Every DequantizeLinear of the model: what it dequantizes, its dtype, scales, zero points and axis. */
export function quantTable(g: Graph): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const n of g.nodes) {
    if (n.opType !== "DequantizeLinear") continue;
    const s = g.initializers.get(n.inputs[1]!);
    const z = n.inputs[2] ? g.initializers.get(n.inputs[2]) : undefined;
    const w = g.initializers.get(n.inputs[0]!);
    rows.push({
      tensor: n.outputs[0],
      kind: w ? (w.dtype === "int32" ? "bias" : "weight") : "activation",
      dtype: w?.dtype ?? z?.dtype ?? "uint8",
      scale: s ? Array.from(toFloat32(s)) : null,
      zero_point: z ? Array.from(toFloat32(z)) : [0],
      axis: s && s.dims.length > 0 ? attrInt(n, "axis", 1) : null,
    });
  }
  return rows;
}

/** Layers whose int8 weights exceed ±64 and read activations through DQ (can saturate u8·s8 on x86 without VNNI). */
function saturationRisk(g: Graph): string[] {
  const producers = g.producers();
  const out: string[] = [];
  for (const n of g.nodes) {
    let w: Tensor | undefined;
    if (n.opType === "Conv" || n.opType === "Gemm" || n.opType === "MatMul") {
      const dq = producers.get(n.inputs[1]!);
      if (dq?.opType === "DequantizeLinear") w = g.initializers.get(dq.inputs[0]!);
    } else if (
      n.opType === "QLinearConv" ||
      n.opType === "QGemm" ||
      n.opType === "QLinearMatMul" ||
      n.opType === "MatMulInteger"
    ) {
      w = g.initializers.get(n.inputs[n.opType === "MatMulInteger" ? 1 : 3]!);
    }
    if (w?.dtype !== "int8") continue;
    if ((w.data as Int8Array).some((v) => v > 64 || v < -64)) out.push(`'${n.name}'`);
  }
  return out;
}

/** Store the weight of layer node `node` as INT4 (its DQ's integer initializer); returns the initializer's name. */
function toInt4(g: Graph, node: string, qmin: number, qmax: number, file: string): string {
  const n = g.nodes.find((x) => x.name === node);
  const dq = n ? g.producers().get(n.inputs[1]!) : undefined;
  const t = dq?.opType === "DequantizeLinear" ? g.initializers.get(dq.inputs[0]!) : undefined;
  if (!dq || !t)
    throw new ExportError("4-bit weight: no DequantizeLinear of a constant feeds the layer", { file, node });
  const signed = qmin < 0;
  const [lo, hi] = signed ? [-8, 7] : [0, 15];
  if (qmin < lo || qmax > hi)
    throw new ExportError(`weights in ${qmin}…${qmax} do not fit ${signed ? "INT4" : "UINT4"}`, {
      file,
      node,
    });
  const src = t.data as Int8Array | Uint8Array;
  if (src.some((v) => v < lo || v > hi))
    throw new ExportError(`weight values outside ${lo}…${hi}`, { file, node, tensor: dq.inputs[0] });
  const name = g.constant(`${dq.inputs[0]}.int4`, {
    dtype: signed ? "int4" : "uint4",
    dims: [...t.dims],
    data: signed ? Int8Array.from(src) : Uint8Array.from(src),
  });
  dq.inputs[0] = name;
  const z = dq.inputs[2] ? g.initializers.get(dq.inputs[2]) : undefined;
  if (z) {
    dq.inputs[2] = g.constant(`${dq.inputs[2]}.int4`, {
      dtype: signed ? "int4" : "uint4",
      dims: [...z.dims],
      data: signed ? Int8Array.from(toFloat32(z)) : Uint8Array.from(toFloat32(z)),
    });
  }
  return name;
}

/**
 * Ops whose form as qat writes it (the working opset's) means the same from opset 13 to 21, with the first opset
 * that has them. The graph is written at working-opset form; another --opset only relabels it, so anything else
 * (ReduceMean's axes attribute became an input at 18, …) is refused rather than silently mislabelled.
 */
const SAME_FORM_13_TO_21: Record<string, number> = Object.fromEntries([
  ...[
    "Conv",
    "Relu",
    "MaxPool",
    "Flatten",
    "Gemm",
    "MatMul",
    "Identity",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Sqrt",
    "GlobalAveragePool",
    "AveragePool",
    "Clip",
    "QuantizeLinear",
    "DequantizeLinear",
    "Concat",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Sigmoid",
    "Tanh",
    "LeakyRelu",
    "Softmax",
    "LogSoftmax",
    "Cast",
    "Round",
    "Max",
    "Min",
    "Pad",
    "BatchNormalization",
    "ConvInteger",
    "MatMulInteger",
    "QLinearConv",
    "QLinearMatMul",
    "Gather",
    "Shape",
    "Slice",
  ].map((op) => [op, 13] as const),
  ["HardSwish", 14],
]);

function checkOpsetForms(g: Graph, opset: number, file: string): void {
  for (const n of g.nodes) {
    if (n.domain !== "" && n.domain !== "ai.onnx") continue;
    const since = SAME_FORM_13_TO_21[n.opType];
    if (since === undefined || opset < since) {
      throw new ExportError(
        `${n.opType} is written in its opset-${WORKING_OPSET} form, which qat does not know to mean the same at opset ${opset}: export with --opset ${WORKING_OPSET}`,
        { file, node: n.name },
      );
    }
  }
}
