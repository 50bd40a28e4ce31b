import type { Node } from "../ir.js";
import { type Attr, attr } from "../ir.js";
import { numel } from "../tensor.js";
import { type ConvertCtx, type Converter, i64vec } from "./context.js";

/**
 * BatchNormalization: `spatial`, `is_test` and `consumed_inputs` go (opset 9 and 7); training outputs become the
 * training_mode=1 form of opset 14 (Y, running mean, running var). Saved mean/var outputs have no counterpart.
 */
export const batchNorm: Converter = (n: Node, cx: ConvertCtx) => {
  if (n.attrs.spatial?.type === "int" && n.attrs.spatial.value === 0) {
    const scale = cx.shape(n.inputs[1]!);
    if (scale?.length !== 1) cx.fail(n, "spatial=0 (per-activation statistics) has no opset 17 form");
  }
  const isTest = n.attrs.is_test?.type === "int" && n.attrs.is_test.value === 1;
  delete n.attrs.spatial;
  delete n.attrs.is_test;
  if (cx.from >= 14) return;
  const used = n.outputs.map((o, i) => i > 0 && !!o && cx.uses(o) > 0);
  if (used[3] || used[4]) cx.fail(n, "its saved mean/variance outputs are used; opset 14 dropped them");
  // before opset 7 is_test (default 0) chose the mode; from 7 to 13 the presence of the statistics outputs did
  const training = cx.from < 7 ? !isTest : used[1] || used[2];
  if (training) {
    n.attrs.training_mode = attr.int(1);
    n.outputs = n.outputs.slice(0, 3).map((o, i) => (i === 0 || used[i] ? o : ""));
    while (n.outputs.at(-1) === "") n.outputs.pop();
  } else n.outputs = n.outputs.slice(0, 1);
};

/**
 * Softmax/LogSoftmax/Hardmax before opset 13 work on the input coerced to 2-D at `axis` (default 1); from 13 on a
 * single axis (default -1). The last axis means the same in both; otherwise Flatten → op(axis=1) → Reshape back.
 */
export const softmax: Converter = (n: Node, cx: ConvertCtx) => {
  if (cx.from >= 13) return;
  const x = cx.shape(n.inputs[0]!);
  const axisAttr = n.attrs.axis?.type === "int" ? n.attrs.axis.value : 1;
  if (!x) cx.fail(n, "the input's rank must be known to convert the axis semantics of opset 13");
  const axis = axisAttr < 0 ? axisAttr + x.length : axisAttr;
  if (axis === x.length - 1) {
    n.attrs.axis = attr.int(axis);
    return;
  }
  const shape = x.every((d) => typeof d === "number")
    ? cx.addConst(`${n.name}_shape`, i64vec(x as number[]))
    : cx.insert("Shape", [n.inputs[0]!], {}, `${n.name}_shape`);
  const flat = cx.insert("Flatten", [n.inputs[0]!], { axis: attr.int(axis) }, `${n.name}_flatten`);
  const op = cx.insert(n.opType, [flat], { axis: attr.int(1) }, `${n.name}_2d`);
  n.opType = "Reshape";
  n.inputs = [op, shape];
  n.attrs = {};
};

/**
 * Upsample (opset 7: scales attribute, 9: scales input, 1: height/width scales) → Resize with the same
 * sampling: output index i reads input index floor(i / scale) (nearest) or interpolates at i / scale (linear).
 * Resize-10 (X, scales) samples the same way, except that onnxruntime rounds up (ceil) on the axes it shrinks;
 * Resize-17 has one rounding mode per node, so mixed scales become two Resizes (nearest sampling is separable).
 */
export const resize: Converter = (n: Node, cx: ConvertCtx) => {
  const upsample = n.opType === "Upsample";
  if (upsample || cx.from < 11) {
    let scales = n.inputs[1];
    let values: number[] | undefined;
    if (upsample && !scales) {
      const s = n.attrs.scales;
      const x = cx.shape(n.inputs[0]!);
      if (s?.type === "floats" || s?.type === "ints") values = s.value;
      else if (n.attrs.height_scale || n.attrs.width_scale) {
        if (x?.length !== 4) cx.fail(n, "height_scale/width_scale need a 4-D input of known rank");
        const f = (k: string) => (n.attrs[k]?.type === "float" ? (n.attrs[k] as { value: number }).value : 1);
        values = [1, 1, f("height_scale"), f("width_scale")];
      }
      if (!values) cx.fail(n, "has no scales");
      scales = addScales(cx, n.name, values);
    } else if (scales) {
      const t = cx.constant(scales);
      if (t) values = Array.from(t.data as Float32Array);
    }
    if (!scales) cx.fail(n, "has no scales");
    const mode = n.attrs.mode?.type === "string" ? n.attrs.mode.value.toLowerCase() : "nearest";
    if (mode !== "nearest" && mode !== "linear" && mode !== "bilinear") cx.fail(n, `unknown mode '${mode}'`);
    const attrs = (nearest?: string): Record<string, Attr> => ({
      mode: attr.string(nearest ? "nearest" : "linear"),
      coordinate_transformation_mode: attr.string("asymmetric"),
      ...(nearest ? { nearest_mode: attr.string(nearest) } : {}),
    });
    n.opType = "Resize";
    n.inputs = [n.inputs[0]!, "", scales];
    if (mode !== "nearest") {
      n.attrs = attrs();
      return;
    }
    if (upsample) {
      n.attrs = attrs("floor");
      return;
    }
    if (!values)
      cx.fail(n, "nearest resizing with runtime scales: onnxruntime's opset-10 rounding depends on them");
    const down = values.map((v) => v < 1);
    if (down.every((d) => !d) || down.every((d, i) => d || values![i] === 1)) {
      n.attrs = attrs(down.some((d) => d) ? "ceil" : "floor");
      return;
    }
    const shrink = cx.insert(
      "Resize",
      [
        n.inputs[0]!,
        "",
        addScales(
          cx,
          n.name,
          values.map((v) => Math.min(v, 1)),
        ),
      ],
      attrs("ceil"),
      `${n.name}_shrink`,
    );
    n.inputs = [
      shrink,
      "",
      addScales(
        cx,
        n.name,
        values.map((v) => Math.max(v, 1)),
      ),
    ];
    n.attrs = attrs("floor");
    return;
  }
  const ct = n.attrs.coordinate_transformation_mode;
  if (ct?.type === "string" && (ct.value === "tf_half_pixel_for_nn" || ct.value === "half_pixel_symmetric")) {
    cx.fail(n, `coordinate_transformation_mode '${ct.value}' has no opset 17 form`);
  }
  if (n.attrs.antialias?.type === "int" && n.attrs.antialias.value !== 0)
    cx.fail(n, "antialias was added in opset 18 and has no opset 17 form");
  delete n.attrs.antialias;
  const policy = n.attrs.keep_aspect_ratio_policy;
  if (policy?.type === "string" && policy.value !== "stretch")
    cx.fail(n, `keep_aspect_ratio_policy '${policy.value}' was added in opset 18 and has no opset 17 form`);
  delete n.attrs.keep_aspect_ratio_policy;
  const axes = n.attrs.axes;
  if (axes?.type === "ints") {
    delete n.attrs.axes;
    const x = cx.shape(n.inputs[0]!);
    if (!x) cx.fail(n, "an axes attribute needs the input's rank to be known");
    const at = axes.value.map((a) => (a < 0 ? a + x.length : a));
    for (const i of [2, 3]) {
      const name = n.inputs[i];
      if (!name) continue;
      const t = cx.constant(name);
      if (!t) cx.fail(n, "an axes attribute needs constant scales/sizes");
      const vals = Array.from(t.data as ArrayLike<number | bigint>, Number);
      const full = x.map((d, j) => {
        const k = at.indexOf(j);
        if (k >= 0) return vals[k]!;
        if (i === 3 && typeof d !== "number") cx.fail(n, "sizes for unlisted axes need known input dims");
        return i === 2 ? 1 : (d as number);
      });
      n.inputs[i] =
        i === 2
          ? cx.addConst(`${n.name}_scales`, {
              dtype: "float32",
              dims: [full.length],
              data: Float32Array.from(full),
            })
          : cx.addConst(`${n.name}_sizes`, i64vec(full));
    }
  }
};

/** QuantizeLinear/DequantizeLinear: opset 19/21 features (float8, 4-bit, blocked, output_dtype) checked out. */
export const qdq: Converter = (n: Node, cx: ConvertCtx) => {
  if (n.attrs.block_size?.type === "int" && n.attrs.block_size.value !== 0)
    cx.fail(n, "blocked quantization was added in opset 21 and has no opset 17 form");
  delete n.attrs.block_size;
  const zp = n.opType === "QuantizeLinear" ? n.inputs[2] : n.inputs[2] || n.inputs[0];
  const t = zp ? cx.dtype(zp) : undefined;
  if (t && !["uint8", "int8", "int32"].includes(t))
    cx.fail(n, `type ${t} was added in opset ${t.startsWith("float8") ? 19 : 21} and has no opset 17 form`);
  const od = n.attrs.output_dtype;
  const code = od?.type === "int" ? od.value : 0;
  if (code !== 0 && code !== 2 && code !== 3) cx.fail(n, `output_dtype ${code} has no opset 17 form`);
  if (code === 3 && !n.inputs[2]) {
    // an int8 result without a zero point: the opset 17 form says int8 through an explicit zero point of 0
    const s = cx.shape(n.inputs[1]!);
    if (!s?.every((d) => typeof d === "number"))
      cx.fail(n, "an int8 output without a zero point needs the scale's shape");
    const dims = s as number[];
    n.inputs[2] = cx.addConst(`${n.name}_zero_point`, {
      dtype: "int8",
      dims,
      data: new Int8Array(numel(dims)),
    });
  }
  delete n.attrs.output_dtype;
  if (n.attrs.saturate?.type === "int") delete n.attrs.saturate;
};

function addScales(cx: ConvertCtx, base: string, values: number[]): string {
  return cx.addConst(`${base}_scales`, {
    dtype: "float32",
    dims: [values.length],
    data: Float32Array.from(values),
  });
}
