import { type DType, dtypeFromCode } from "../onnx/dtype.js";
import { type Dim, type Graph, getAttr, type Node } from "../onnx/ir.js";
import { BOOL_RESULT, INT64_RESULT } from "../onnx/op-families.js";
import type { Tensor } from "../onnx/tensor.js";

/**
 * What autodiff knows statically of a graph's values: element types and shapes. Shapes come from `g.valueInfo`
 * (fill it with shape inference before calling appendBackward), graph inputs/outputs and initializers. Element
 * types missing from those are propagated here through the forward nodes (most ops keep their first input's
 * type), because every constant a rule emits must match the type of the value it meets.
 */
export class StaticInfo {
  private readonly dtypes = new Map<string, DType>();
  private readonly shapes = new Map<string, Dim[]>();
  private readonly constants = new Map<string, Tensor>();

  constructor(readonly g: Graph) {
    for (const [k, t] of g.initializers) {
      this.dtypes.set(k, t.dtype);
      this.shapes.set(k, t.dims);
      this.constants.set(k, t);
    }
    for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo.values()]) {
      if (v.dtype && !this.dtypes.has(v.name)) this.dtypes.set(v.name, v.dtype);
      if (v.shape && !this.shapes.has(v.name)) this.shapes.set(v.name, v.shape);
    }
    for (const n of g.nodes) {
      if (n.opType === "Constant" && n.domain === "") {
        const t = constantOf(n);
        if (t) {
          this.constants.set(n.outputs[0]!, t);
          this.dtypes.set(n.outputs[0]!, t.dtype);
          this.shapes.set(n.outputs[0]!, t.dims);
        }
      }
      const dt = outputDtype(n, (x) => this.dtypes.get(x));
      n.outputs.forEach((o, i) => {
        const d = i === 0 || n.opType === "Split" ? dt : secondaryDtype(n, i, dt);
        if (o && d && !this.dtypes.has(o)) this.dtypes.set(o, d);
      });
    }
  }

  dtype(name: string): DType | undefined {
    return this.dtypes.get(name);
  }

  shape(name: string): Dim[] | undefined {
    return this.shapes.get(name);
  }

  /** The tensor behind a value when it is an initializer or a Constant node's output. */
  constant(name: string): Tensor | undefined {
    return this.constants.get(name);
  }

  /** Record the type of a value the backward pass created. */
  note(name: string, dtype: DType, shape?: Dim[]): void {
    this.dtypes.set(name, dtype);
    if (shape) this.shapes.set(name, shape);
  }
}

const INT64_OUT = new Set(INT64_RESULT);
const BOOL_OUT = new Set(BOOL_RESULT);

function outputDtype(n: Node, get: (x: string) => DType | undefined): DType | undefined {
  if (INT64_OUT.has(n.opType)) return "int64";
  if (BOOL_OUT.has(n.opType)) return "bool";
  if (n.opType === "Cast") return dtypeFromCode(getAttr(n, "to", "int")?.value ?? 1);
  if (n.opType === "Where") return get(n.inputs[1]!);
  if (n.opType === "ConstantOfShape") return getAttr(n, "value", "tensor")?.value.dtype ?? "float32";
  if (n.opType === "QuantizeLinear") return n.inputs[2] ? get(n.inputs[2]) : "uint8";
  if (n.opType === "DequantizeLinear") return get(n.inputs[1]!);
  for (const i of n.inputs) if (i) return get(i);
  return undefined;
}

function secondaryDtype(n: Node, i: number, first: DType | undefined): DType | undefined {
  if (n.opType === "MaxPool" && i === 1) return "int64";
  if (n.opType === "Dropout" && i === 1) return "bool";
  if (n.opType === "TopK" && i === 1) return "int64";
  return first;
}

function constantOf(n: Node): Tensor | undefined {
  const a = n.attrs;
  if (a.value?.type === "tensor") return a.value.value;
  const f32 = (dims: number[], v: number[]): Tensor => ({
    dtype: "float32",
    dims,
    data: Float32Array.from(v),
  });
  const i64 = (dims: number[], v: number[]): Tensor => ({
    dtype: "int64",
    dims,
    data: BigInt64Array.from(v, BigInt),
  });
  if (a.value_float?.type === "float") return f32([], [a.value_float.value]);
  if (a.value_floats?.type === "floats") return f32([a.value_floats.value.length], a.value_floats.value);
  if (a.value_int?.type === "int") return i64([], [a.value_int.value]);
  if (a.value_ints?.type === "ints") return i64([a.value_ints.value.length], a.value_ints.value);
  return undefined;
}
