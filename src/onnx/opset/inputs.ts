import type { Node } from "../ir.js";
import { attr } from "../ir.js";
import { type ConvertCtx, type Converter, i64vec } from "./context.js";
import { scalarOf } from "./legacy.js";

/** Reshape before opset 5 took the target shape as an attribute. */
export const reshape: Converter = (n: Node, cx: ConvertCtx) => {
  const s = n.attrs.shape;
  if (cx.from >= 5 || !s) return;
  if (s.type !== "ints") cx.fail(n, `attribute 'shape' is ${s.type}, expected ints`);
  delete n.attrs.shape;
  n.inputs = [n.inputs[0]!, cx.addConst(`${n.name}_shape`, i64vec(s.value))];
};

/** Move an ints attribute to an int64 input at position `at` (inputs in between are left empty). */
function attrToInput(n: Node, cx: ConvertCtx, name: string, at: number): void {
  const a = n.attrs[name];
  if (!a) return;
  if (a.type !== "ints") cx.fail(n, `attribute '${name}' is ${a.type}, expected ints`);
  delete n.attrs[name];
  while (n.inputs.length < at) n.inputs.push("");
  n.inputs[at] = cx.addConst(`${n.name}_${name}`, i64vec(a.value));
}

/** Squeeze/Unsqueeze took axes as an attribute before opset 13. */
export const axesToInput: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from < 13) attrToInput(n, cx, "axes", 1);
};

/** Split: `split` attribute → input (13); num_outputs (18) → equal parts or explicit sizes. */
export const split: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from < 13) attrToInput(n, cx, "split", 1);
  const k = n.attrs.num_outputs;
  if (!k) return;
  delete n.attrs.num_outputs;
  const x = cx.shape(n.inputs[0]!);
  const axis = n.attrs.axis?.type === "int" ? n.attrs.axis.value : 0;
  const d = x?.[axis < 0 ? axis + x.length : axis];
  const parts = n.outputs.length;
  if (typeof d === "number" && d % parts === 0) return; // equal parts: what Split-13 does without `split`
  if (typeof d !== "number")
    cx.fail(n, "num_outputs with an uneven or unknown split dim needs the dim to be known");
  const size = Math.ceil(d / parts);
  const sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(size, d - i * size)));
  n.inputs[1] = cx.addConst(`${n.name}_split`, i64vec(sizes));
};

/** Slice before opset 10 took starts/ends/axes as attributes. */
export const slice: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from >= 10) return;
  for (const [name, at] of [
    ["starts", 1],
    ["ends", 2],
    ["axes", 3],
  ] as const)
    attrToInput(n, cx, name, at);
};

/** Pad: pads/paddings and value → inputs (11); axes input (18) → full-rank pads; wrap mode (19) unsupported. */
export const pad: Converter = (n: Node, cx: ConvertCtx) => {
  const mode = n.attrs.mode?.type === "string" ? n.attrs.mode.value : "constant";
  if (mode === "wrap") cx.fail(n, "mode 'wrap' was added in opset 19 and has no opset 17 form");
  if (cx.from < 11) {
    const p = n.attrs.pads ?? n.attrs.paddings;
    if (p?.type !== "ints") cx.fail(n, "has no pads");
    const value = n.attrs.value?.type === "float" ? n.attrs.value.value : 0;
    delete n.attrs.pads;
    delete n.attrs.paddings;
    delete n.attrs.value;
    n.inputs = [n.inputs[0]!, cx.addConst(`${n.name}_pads`, i64vec(p.value))];
    if (value !== 0 && mode === "constant") {
      const dtype = cx.dtype(n.inputs[0]!) ?? "float32";
      n.inputs.push(cx.addConst(`${n.name}_value`, scalarOf(dtype, value)));
    }
  }
  if (n.inputs[3]) {
    const axes = cx.ints(n.inputs[3]);
    const pads = cx.ints(n.inputs[1]!);
    const x = cx.shape(n.inputs[0]!);
    if (!axes || !pads || !x) cx.fail(n, "an axes input needs constant axes and pads and a known input rank");
    const full = Array(2 * x.length).fill(0);
    axes.forEach((a, k) => {
      const i = a < 0 ? a + x.length : a;
      full[i] = pads[k]!;
      full[i + x.length] = pads[k + axes.length]!;
    });
    n.inputs = [n.inputs[0]!, cx.addConst(`${n.name}_pads`, i64vec(full)), n.inputs[2] ?? ""];
    while (n.inputs.at(-1) === "") n.inputs.pop();
  }
};

/** Clip before opset 11 took min/max as attributes (absent bound = no bound). */
export const clip: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from >= 11) return;
  const dtype = cx.dtype(n.inputs[0]!) ?? "float32";
  const bound = (k: string) => {
    const a = n.attrs[k];
    delete n.attrs[k];
    return a?.type === "float" ? cx.addConst(`${n.name}_${k}`, scalarOf(dtype, a.value)) : "";
  };
  n.inputs = [n.inputs[0]!, bound("min"), bound("max")];
  while (n.inputs.at(-1) === "") n.inputs.pop();
};

/**
 * Dropout: is_test (before 7) is dropped, ratio moves to an input (12). Normalised graphs run Dropout in
 * inference mode (training_mode absent), which is what onnxruntime does with every Dropout before opset 12.
 */
export const dropout: Converter = (n: Node, cx: ConvertCtx) => {
  delete n.attrs.is_test;
  if (cx.from >= 12) return;
  const r = n.attrs.ratio;
  delete n.attrs.ratio;
  if (r?.type === "float")
    n.inputs = [n.inputs[0]!, cx.addConst(`${n.name}_ratio`, scalarOf("float32", r.value))];
};

const REDUCE_SUM_LIKE = new Set(["ReduceSum"]);

/**
 * Reduce*: axes became an input in opset 13 for ReduceSum and in 18 for the others. At 17, ReduceSum takes the
 * input form and the others the attribute form (an empty axes input with noop_with_empty_axes becomes Identity).
 */
export const reduce: Converter = (n: Node, cx: ConvertCtx) => {
  const inputForm = REDUCE_SUM_LIKE.has(n.opType);
  if (inputForm) {
    if (cx.from < 13) attrToInput(n, cx, "axes", 1);
    return;
  }
  if (cx.from < 18) return;
  const noop = n.attrs.noop_with_empty_axes?.type === "int" && n.attrs.noop_with_empty_axes.value === 1;
  delete n.attrs.noop_with_empty_axes;
  const given = n.inputs[1];
  const axes = given ? cx.ints(given) : [];
  if (!axes) cx.fail(n, "axes must be a constant to express this reduction at opset 17");
  n.inputs = [n.inputs[0]!];
  if (axes.length === 0 && noop) {
    n.opType = "Identity";
    n.attrs = {};
    return;
  }
  if (axes.length > 0) n.attrs.axes = attr.ints(axes);
};
