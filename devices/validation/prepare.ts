/**
 * A validation's model and evaluation set, checked and made ready before anything runs: one float input fed in
 * batches of a size the model accepts, the runtime's constraints (TensorRT's explicit-quantization rules, no layer
 * probes under TensorRT), and the probe copy of the model that exposes the compared intermediate tensors.
 */
import { createHash } from "node:crypto";
import { checkTensorRt } from "../../src/export/tensorrt.js";
import { decodeModel, encodeModel } from "../../src/onnx/codec.js";
import { OnnxError } from "../../src/onnx/errors.js";
import type { Model } from "../../src/onnx/ir.js";
import { normalizeQdqScalars } from "../../src/onnx/qdq-scalars.js";
import { DeviceError } from "../errors.js";
import { probeList } from "../layers.js";
import { DEFAULT_LAYER_THRESHOLD, type EvalSet, RUNTIMES, type ValidateOptions } from "./options.js";

/** The probe copy of the model: the exposed tensors as extra graph outputs. */
export interface Probe {
  bytes: Uint8Array;
  sha256: string;
  /** The exposed tensors. */
  names: string[];
}

export interface Prepared {
  bytes: Uint8Array;
  sha256: string;
  model: Model;
  inputName: string;
  outputName: string;
  /** Input dims with a symbolic (or unknown) size: trtexec needs --shapes. */
  dynamic: boolean;
  /** The model has QuantizeLinear/DequantizeLinear nodes (tensorrt: build with int8). */
  quantized: boolean;
  probe?: Probe;
  batchSize: number;
  samples: number;
  sampleSize: number;
}

function usage(message: string, hint?: string): DeviceError {
  return new DeviceError("bad-option", message, { hint, exitCode: 2 });
}

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

/**
 * Refuse a QDQ model that breaks TensorRT's explicit-quantization rules (the exporter's own checks), naming the
 * nodes: TensorRT would fail to build it, or build something other than what was trained.
 */
export function assertTensorRtModel(model: Model): void {
  const issues = checkTensorRt(model.graph, model.opsets[""] ?? model.opsets["ai.onnx"] ?? 0);
  if (!issues.length) return;
  const where = (i: { node?: string; tensor?: string }): string =>
    [i.node && `node '${i.node}'`, i.tensor && `tensor '${i.tensor}'`].filter(Boolean).join(", ");
  throw new DeviceError(
    "not-for-tensorrt",
    `the model breaks TensorRT's explicit-quantization rules:\n${issues
      .slice(0, 8)
      .map((i) => `  ${where(i)}: ${i.message}`)
      .join("\n")}${issues.length > 8 ? `\n  … and ${issues.length - 8} more` : ""}`,
    { hint: "train with --qat tensorrt and export with `qat export --target tensorrt`", exitCode: 2 },
  );
}

/** The samples of the set and the batch size to run them in, checked against the model's one input. */
function batching(model: Model, set: EvalSet, opts: ValidateOptions) {
  const g = model.graph;
  const inits = new Set(g.initializers.keys());
  const inputs = g.inputs.filter((v) => !inits.has(v.name));
  if (inputs.length !== 1) {
    throw new OnnxError(
      `validation feeds one input; the model has ${inputs.length} (${inputs.map((v) => v.name).join(", ")})`,
    );
  }
  const input = inputs[0]!;
  const sampleSize = set.sampleShape.reduce((a, b) => a * b, 1);
  if (!sampleSize || set.inputs.length % sampleSize) {
    throw new OnnxError(
      `the evaluation set has ${set.inputs.length} values, not a multiple of the sample shape [${set.sampleShape}]`,
    );
  }
  const samples = set.inputs.length / sampleSize;
  if (set.labels.length !== samples)
    throw new OnnxError(`the evaluation set has ${samples} samples but ${set.labels.length} labels`);
  const fixed = typeof input.shape?.[0] === "number" ? (input.shape[0] as number) : undefined;
  const batchSize = opts.batchSize ?? fixed ?? 32;
  if (fixed !== undefined && batchSize !== fixed) {
    throw new OnnxError(
      `the model's input '${input.name}' fixes the batch at ${fixed}; batchSize ${batchSize} cannot run`,
    );
  }
  return { input, sampleSize, samples, batchSize };
}

/** Refuse options the runtime cannot honour. */
function checkRuntime(model: Model, quantized: boolean, opts: ValidateOptions): void {
  const threshold = opts.layerThreshold ?? DEFAULT_LAYER_THRESHOLD;
  if (!(threshold >= 0)) throw usage(`the layer threshold must be ≥ 0 quantization steps, got ${threshold}`);
  const runtime = opts.runtime ?? "onnxruntime";
  if (!RUNTIMES.includes(runtime))
    throw usage(`unknown runtime '${String(runtime)}'`, `choose ${RUNTIMES.join(" or ")}`);
  if (runtime !== "tensorrt") return;
  if (opts.layers && (opts.layers === "all" || opts.layers.length)) {
    throw usage(
      "--layers cannot run with --runtime tensorrt: TensorRT fuses layers into its own kernels, and marking " +
        "intermediate tensors as outputs would build another engine",
      "compare layers with the onnxruntime runtime",
    );
  }
  if (quantized) assertTensorRtModel(model);
}

/** A copy of the model with the wanted intermediate tensors as extra graph outputs, or undefined for none. */
function probeCopy(modelBytes: Uint8Array, model: Model, wanted: string[] | "all"): Probe | undefined {
  if (wanted !== "all" && !wanted.length) return undefined;
  const g = model.graph;
  const names = probeList(g, wanted).filter((n) => n !== g.outputs[0]!.name);
  const copy = decodeModel(modelBytes);
  const outNames = new Set(copy.graph.outputs.map((o) => o.name));
  for (const l of names) {
    if (!outNames.has(l)) copy.graph.outputs.push({ name: l, ...(copy.graph.valueInfo.get(l) ?? {}) });
  }
  const bytes = encodeModel(copy);
  return { bytes, sha256: sha256(bytes), names };
}

/** Check the model, the set and the options together; OnnxError or DeviceError (exit 2) when they do not fit. */
export function prepare(original: Uint8Array, set: EvalSet, opts: ValidateOptions): Prepared {
  const model = decodeModel(original);
  // a foreign int8 model (PyTorch) with [1]-shaped Q/DQ scales: ORT's fusion refuses it, on the host and the board
  // alike, so both run the normalised copy (same values; see src/onnx/qdq-scalars.ts)
  const modelBytes = normalizeQdqScalars(model).nodes.length ? encodeModel(model) : original;
  const g = model.graph;
  const { input, sampleSize, samples, batchSize } = batching(model, set, opts);
  const quantized = g.nodes.some((n) => n.opType === "QuantizeLinear" || n.opType === "DequantizeLinear");
  checkRuntime(model, quantized, opts);
  return {
    bytes: modelBytes,
    sha256: sha256(modelBytes),
    model,
    inputName: input.name,
    outputName: g.outputs[0]!.name,
    dynamic: !input.shape || input.shape.some((d) => typeof d !== "number"),
    quantized,
    probe: probeCopy(modelBytes, model, opts.layers ?? []),
    batchSize,
    samples,
    sampleSize,
  };
}
