import { attrInt, type Graph } from "../onnx/ir.js";
import { toFloat32 } from "../onnx/tensor.js";
import type { PlacementRow } from "./source.js";

/** A way a model breaks TensorRT's explicit-quantization rules, naming where. */
export interface StructuralIssue {
  node?: string;
  tensor?: string;
  message: string;
}

/**
 * Why a checkpoint's quantization cannot be exported to the TensorRT profile unchanged (TensorRT's explicit
 * quantization is int8 symmetric: zero points 0, signed activations, weights in −127…127). Changing it at export
 * would no longer be what QAT simulated, so these are reasons to retrain with `--qat tensorrt`.
 */
export function tensorRtQConfigIssues(rows: PlacementRow[]): StructuralIssue[] {
  const out: StructuralIssue[] = [];
  for (const r of rows) {
    if (r.dtype !== "int8")
      out.push({
        tensor: r.tensor,
        message: `${r.kind} is quantized to ${r.dtype}; TensorRT takes int8 only`,
      });
    else if (r.kind === "weight" && r.qmin < -127)
      out.push({
        tensor: r.tensor,
        message: `weight range starts at ${r.qmin}; TensorRT weights are narrow-range (−127…127)`,
      });
    if (r.kind === "weight" && r.bits < 8)
      out.push({ tensor: r.tensor, message: `${r.bits}-bit weights: the TensorRT profile is int8` });
  }
  return out;
}

/**
 * Structural checks of a QDQ model against TensorRT's explicit-quantization rules (TensorRT developer guide,
 * "Working with Quantized Types"): ai.onnx ops only, opset ≥ 13; every QuantizeLinear/DequantizeLinear int8 with
 * zero point 0 and positive finite scales; per-channel only on constant weights (axis 0 of Conv weights, the output
 * axis of Gemm weights) and per-tensor on activations; weights stored as int8 constants in −127…127 behind a
 * DequantizeLinear; Conv/Gemm/MatMul reading DQ on their data and weight inputs, biases in float; a DQ of an
 * activation reading a QuantizeLinear directly (nothing between the pair). TensorRT itself does not run here:
 * these checks are all that is verified.
 */
export function checkTensorRt(g: Graph, opset: number): StructuralIssue[] {
  const issues: StructuralIssue[] = [];
  if (opset < 13) issues.push({ message: `opset ${opset}: per-channel Q/DQ needs opset 13 or later` });
  const producers = g.producers();
  const init = (v: string | undefined) => (v ? g.initializers.get(v) : undefined);
  for (const n of g.nodes) {
    if (n.domain !== "" && n.domain !== "ai.onnx") {
      issues.push({
        node: n.name,
        message: `${n.domain}.${n.opType} is not an ONNX operator TensorRT parses`,
      });
      continue;
    }
    if (/^QLinear|Integer$/.test(n.opType))
      issues.push({
        node: n.name,
        message: `${n.opType}: QOperator ops are not TensorRT's format (use QDQ)`,
      });
    if (n.opType === "QuantizeLinear" || n.opType === "DequantizeLinear") {
      const s = init(n.inputs[1]);
      const z = init(n.inputs[2]);
      if (!s) issues.push({ node: n.name, message: "scale is not a constant" });
      else if (!toFloat32(s).every((v) => Number.isFinite(v) && v > 0))
        issues.push({ node: n.name, tensor: n.inputs[1], message: "scales must be positive and finite" });
      if (!z)
        issues.push({
          node: n.name,
          message: "zero point missing: TensorRT needs an explicit int8 zero point of 0",
        });
      else {
        if (z.dtype !== "int8")
          issues.push({
            node: n.name,
            tensor: n.inputs[2],
            message: `zero point is ${z.dtype}, TensorRT needs int8`,
          });
        if (!toFloat32(z).every((v) => v === 0))
          issues.push({ node: n.name, tensor: n.inputs[2], message: "zero point is not 0" });
      }
      const perChannel = !!s && s.dims.length > 0 && s.dims.some((d) => d > 1);
      const weight = init(n.inputs[0]);
      if (n.opType === "DequantizeLinear") {
        if (weight) {
          if (weight.dtype !== "int8")
            issues.push({
              node: n.name,
              tensor: n.inputs[0],
              message: `weights stored as ${weight.dtype}, TensorRT needs int8`,
            });
          else if ((weight.data as Int8Array).some((v) => v < -127))
            issues.push({
              node: n.name,
              tensor: n.inputs[0],
              message: "weights use −128: TensorRT weights are narrow-range (−127…127)",
            });
        } else {
          if (perChannel)
            issues.push({
              node: n.name,
              message: "per-channel scale on an activation: TensorRT activations are per-tensor",
            });
          const p = producers.get(n.inputs[0]!);
          if (p?.opType !== "QuantizeLinear")
            issues.push({
              node: n.name,
              message: `reads ${p ? p.opType : "a graph input"}, not a QuantizeLinear: nothing may sit between Q and DQ`,
            });
        }
      } else if (perChannel)
        issues.push({ node: n.name, message: "per-channel QuantizeLinear on an activation" });
    }
    if (n.opType === "Conv" || n.opType === "Gemm" || n.opType === "MatMul") {
      const x = producers.get(n.inputs[0]!);
      const w = producers.get(n.inputs[1]!);
      if (x?.opType !== "DequantizeLinear")
        issues.push({
          node: n.name,
          message: `${n.opType} input is not dequantized: the layer would run in float`,
        });
      if (w?.opType !== "DequantizeLinear" || !init(w.inputs[0]))
        issues.push({ node: n.name, message: "weight is not an int8 constant behind DequantizeLinear" });
      else {
        const s = init(w.inputs[1]);
        const wt = init(w.inputs[0])!;
        const axis = (attrInt(w, "axis", 1) + wt.dims.length) % wt.dims.length;
        const want =
          n.opType === "Conv"
            ? 0
            : n.opType === "Gemm"
              ? attrInt(n, "transB", 0)
                ? 0
                : 1
              : wt.dims.length - 1;
        if (s && s.dims.length > 0 && s.dims.some((d) => d > 1) && axis !== want) {
          issues.push({
            node: w.name,
            message: `per-channel axis ${axis}, TensorRT wants the output-channel axis ${want}`,
          });
        }
      }
      const b = n.inputs[2];
      if (b && !init(b))
        issues.push({
          node: n.name,
          tensor: b,
          message: "bias is computed or dequantized: TensorRT takes a float bias constant",
        });
    }
  }
  return issues;
}
