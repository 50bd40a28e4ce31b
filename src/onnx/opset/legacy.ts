import { DTYPE_CODE, type DType, floatToHalf, STORAGE } from "../dtype.js";
import type { Node } from "../ir.js";
import { LEGACY_TYPE_NAMES } from "../shapes/elementwise.js";
import type { Tensor } from "../tensor.js";
import { type ConvertCtx, type Converter, i64vec } from "./context.js";

/** A scalar constant of a given element type (Clip bounds, Pad values follow their input's type). */
export function scalarOf(dtype: DType, v: number): Tensor {
  if (dtype === "string") throw new Error("no numeric scalar of type string");
  const { ctor } = STORAGE[dtype];
  const data = new ctor(1);
  if (dtype === "float16") (data as Uint16Array)[0] = floatToHalf(v);
  else if (ctor === BigInt64Array || ctor === BigUint64Array)
    (data as BigInt64Array)[0] = BigInt(Math.trunc(v));
  else (data as Float32Array)[0] = v;
  return { dtype, dims: [], data };
}

/**
 * Add/Sub/Mul/Div/Pow and the comparisons before opset 7: `broadcast=1` broadcasts B to A with B's dims aligned
 * at `axis` (suffix-aligned without it). Numpy broadcasting aligns at the end, so B gets trailing 1s: a constant
 * B is reshaped (in place when nothing else reads it), any other B goes through an Unsqueeze.
 */
export const legacyBroadcast: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from >= 7) return;
  const broadcast = n.attrs.broadcast?.type === "int" ? n.attrs.broadcast.value : 0;
  const axisAttr = n.attrs.axis;
  delete n.attrs.broadcast;
  delete n.attrs.axis;
  if (!broadcast || !axisAttr || axisAttr.type !== "int") return;
  const a = cx.shape(n.inputs[0]!);
  const b = cx.shape(n.inputs[1]!);
  if (!a || !b)
    cx.fail(n, `broadcast with axis=${axisAttr.value} needs the ranks of both inputs, which are unknown`);
  const start = axisAttr.value < 0 ? axisAttr.value + a.length : axisAttr.value;
  const trailing = a.length - start - b.length;
  if (start < 0 || trailing < 0)
    cx.fail(n, `B of rank ${b.length} does not fit A of rank ${a.length} at axis ${axisAttr.value}`);
  if (trailing === 0) return;
  const name = n.inputs[1]!;
  const t = cx.constant(name);
  if (t) {
    const reshaped: Tensor = { ...t, dims: [...t.dims, ...Array(trailing).fill(1)] };
    if (cx.uses(name) === 1) cx.g.initializers.set(name, reshaped);
    else n.inputs[1] = cx.addConst(`${name}_bcast`, reshaped);
    return;
  }
  const axes = cx.addConst(
    `${n.name}_axes`,
    i64vec(Array.from({ length: trailing }, (_, i) => b.length + i)),
  );
  n.inputs[1] = cx.insert("Unsqueeze", [name, axes], {}, `${n.name}_bcast`);
};

/** Gemm before opset 7 had a `broadcast` flag for C; numpy broadcasting of C covers both of its settings. */
export const gemm: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from < 7) delete n.attrs.broadcast;
};

/** Concat before opset 4 defaulted to axis 1. */
export const concat: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from < 4 && !n.attrs.axis) n.attrs.axis = { type: "int", value: 1 };
};

/** Cast in opset 1 names its target type by string; from 19 `saturate` only affects float8 targets. */
export const cast: Converter = (n: Node, cx: ConvertCtx) => {
  const to = n.attrs.to;
  if (to?.type === "string") {
    const dtype = LEGACY_TYPE_NAMES[to.value.toUpperCase()];
    if (!dtype) cx.fail(n, `unknown target type '${to.value}'`);
    n.attrs.to = { type: "int", value: DTYPE_CODE[dtype] };
  }
  const code = n.attrs.to?.type === "int" ? n.attrs.to.value : 0;
  if (code > DTYPE_CODE.bfloat16)
    cx.fail(n, `target type code ${code} (float8/4-bit) does not exist at opset 17`);
  delete n.attrs.saturate;
};

/** Tile-1 took (input, tiles, axis) scalars; from opset 6 it takes one repeat count per dim. */
export const tile: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from >= 6 || n.inputs.length < 3) return;
  const tiles = cx.ints(n.inputs[1]!);
  const axis = cx.ints(n.inputs[2]!);
  const x = cx.shape(n.inputs[0]!);
  if (!tiles || !axis || !x) cx.fail(n, "tiles and axis must be constants and the input's rank known");
  const a = axis[0]! < 0 ? axis[0]! + x.length : axis[0]!;
  const reps = x.map((_, i) => (i === a ? tiles[0]! : 1));
  n.inputs = [n.inputs[0]!, cx.addConst(`${n.name}_repeats`, i64vec(reps))];
};

/** Scatter (opset 9–10) is ScatterElements under its old name; ScatterElements 18 added max/min reductions. */
export const scatter: Converter = (n: Node, cx: ConvertCtx) => {
  if (n.opType === "Scatter") n.opType = "ScatterElements";
  const r = n.attrs.reduction;
  if (r?.type === "string" && (r.value === "max" || r.value === "min"))
    cx.fail(n, `reduction '${r.value}' was added in opset 18 and has no opset 17 form`);
};

/** AveragePool 19 added dilations; only all-1 dilations exist at 17. */
export const averagePool: Converter = (n: Node, cx: ConvertCtx) => {
  const d = n.attrs.dilations;
  if (d?.type === "ints") {
    if (d.value.some((v) => v !== 1)) cx.fail(n, `dilations [${d.value}] need opset 19`);
    delete n.attrs.dilations;
  }
};
