import { attrInt, attrString, type Graph, type Node } from "../onnx/ir.js";
import { tensor } from "../onnx/tensor.js";

/**
 * The fake-quantize op of qat's training graphs: `ai.qat::FakeQuantize(x, scale, zero_point) → x̂`, with
 *   q = saturate(round_half_even(x / scale) + zero_point, qmin, qmax),   x̂ = (q − zero_point) · scale,
 * the division done in float32. It exists only between building a graph and running it: autodiff differentiates it
 * with the rule in ste.ts, then `lowerFakeQuant` replaces every one by a real QuantizeLinear → DequantizeLinear
 * pair (with an integer Clip between when [qmin, qmax] is narrower than the integer type), so ONNX Runtime computes
 * the forward pass with the very kernels the exported int8 model will use.
 *
 * Attributes: qmin, qmax (ints); dtype ("uint8", "int8" or "int32" for biases); axis (per-channel axis, −1 = per
 * tensor); grad ("lsq": learned scale, LSQ gradient; "pact": learned clipping, gradient only from clipped values;
 * "ste": fixed scale); grad_scale (LSQ's g); learn_zero_point (0/1).
 * Inputs: scale is float32 (scalar or [C]); zero_point is an integer tensor of `dtype`, or float32 when learned.
 */
export const QAT_DOMAIN = "ai.qat";
export const FAKE_QUANT = "FakeQuantize";

export type QuantDType = "uint8" | "int8" | "int32";
export type ScaleGrad = "lsq" | "pact" | "ste";

export interface FakeQuantSpec {
  qmin: number;
  qmax: number;
  dtype: QuantDType;
  /** Per-channel axis of x, or −1 for one scale for the whole tensor. */
  axis: number;
  grad: ScaleGrad;
  /** LSQ gradient scale g = 1/√(N·Qp). */
  gradScale: number;
  learnZeroPoint: boolean;
}

export const DTYPE_RANGE: Record<QuantDType, [number, number]> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int32: [-2147483648, 2147483647],
};

/** Append a FakeQuantize node and return its output; `shape` (with the batch dim) is recorded for autodiff. */
export function emitFakeQuant(
  g: Graph,
  x: string,
  scale: string,
  zeroPoint: string,
  spec: FakeQuantSpec,
  opts: { name: string; shape?: (number | string | null)[] },
): string {
  const y = g.op(
    FAKE_QUANT,
    [x, scale, zeroPoint],
    {
      qmin: spec.qmin,
      qmax: spec.qmax,
      dtype: spec.dtype,
      axis: spec.axis,
      grad: spec.grad,
      grad_scale: { type: "float", value: spec.gradScale },
      learn_zero_point: spec.learnZeroPoint ? 1 : 0,
    },
    { name: opts.name, domain: QAT_DOMAIN, output: g.uniqueName(`${x}.fq`) },
  );
  // shape inference does not know ai.qat ops: what it keeps from valueInfo lets gradient rules see static shapes
  const known = g.valueInfo.get(x);
  const shape = opts.shape ?? known?.shape;
  g.valueInfo.set(y, { name: y, dtype: "float32", shape: shape && [...shape] });
  return y;
}

export function isFakeQuant(n: Node): boolean {
  return n.opType === FAKE_QUANT && n.domain === QAT_DOMAIN;
}

/** The spec a FakeQuantize node carries. */
export function fakeQuantSpec(n: Node): FakeQuantSpec {
  const gs = n.attrs.grad_scale;
  return {
    qmin: attrInt(n, "qmin", 0),
    qmax: attrInt(n, "qmax", 255),
    dtype: attrString(n, "dtype", "uint8") as QuantDType,
    axis: attrInt(n, "axis", -1),
    grad: attrString(n, "grad", "ste") as ScaleGrad,
    gradScale: gs?.type === "float" ? gs.value : 1,
    learnZeroPoint: attrInt(n, "learn_zero_point", 0) === 1,
  };
}

/**
 * Replace every FakeQuantize node of `g` by ai.onnx ops, in place, keeping its output name:
 * - uint8/int8: QuantizeLinear → [Clip on the integers when qmin/qmax are narrower than the type] → DequantizeLinear
 *   (a learned float zero point is rounded, saturated and cast first);
 * - int32 (biases, zero point 0): Round(x / scale) · scale in float32, which is exact while |x / scale| < 2^24.
 * Optional outputs a gradient rule added to the node are not supported and raise.
 */
export function lowerFakeQuant(g: Graph): number {
  const out: Node[] = [];
  let count = 0;
  const consts = new Map<string, string>();
  const intConst = (dtype: QuantDType, v: number): string => {
    const key = `${dtype}:${v}`;
    const have = consts.get(key);
    if (have) return have;
    const c = g.constant(`qat.${dtype}_${v < 0 ? `m${-v}` : v}`, tensor(dtype, [], [v]));
    consts.set(key, c);
    return c;
  };
  const pending: Node[] = [];
  const emit = (
    opType: string,
    inputs: string[],
    attrs: Record<string, number>,
    name: string,
    output?: string,
  ): string => {
    const before = g.nodes.length;
    const y = g.op(opType, inputs, attrs, { name, output });
    pending.push(...g.nodes.splice(before));
    return y;
  };
  for (const n of g.nodes) {
    if (!isFakeQuant(n)) {
      out.push(n);
      continue;
    }
    if (n.outputs.length > 1 && n.outputs.slice(1).some((o) => o)) {
      throw new Error(`FakeQuantize node '${n.name}': optional outputs cannot be lowered`);
    }
    count++;
    const s = fakeQuantSpec(n);
    const [x, scale, zp] = n.inputs as [string, string, string];
    const y = n.outputs[0]!;
    if (s.dtype === "int32") {
      const v = emit("Round", [emit("Div", [x, scale], {}, `${n.name}.div`)], {}, `${n.name}.round`);
      emit("Mul", [v, scale], {}, `${n.name}.mul`, y);
    } else {
      const axisAttr: Record<string, number> = s.axis >= 0 ? { axis: s.axis } : {};
      let z = zp;
      if (s.learnZeroPoint) {
        const code = s.dtype === "uint8" ? 2 : 3;
        const rounded = emit("Round", [zp], {}, `${n.name}.zp_round`);
        const lo = g.constant(`${n.name}.zp_min`, tensor("float32", [], [s.qmin]));
        const hi = g.constant(`${n.name}.zp_max`, tensor("float32", [], [s.qmax]));
        z = emit(
          "Cast",
          [emit("Clip", [rounded, lo, hi], {}, `${n.name}.zp_clip`)],
          { to: code },
          `${n.name}.zp_cast`,
        );
      }
      let q = emit("QuantizeLinear", [x, scale, z], axisAttr, `${n.name}.quantize`);
      const [tmin, tmax] = DTYPE_RANGE[s.dtype];
      if (s.qmin > tmin || s.qmax < tmax) {
        q = emit("Clip", [q, intConst(s.dtype, s.qmin), intConst(s.dtype, s.qmax)], {}, `${n.name}.saturate`);
      }
      emit("DequantizeLinear", [q, scale, z], axisAttr, `${n.name}.dequantize`, y);
    }
    out.push(...pending.splice(0));
  }
  g.nodes = out;
  g.invalidate();
  return count;
}

// ------------------------------------------------------------------ reference arithmetic in JS

/** Round half to even, as ONNX Round and QuantizeLinear do (Math.round rounds .5 up). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Fake-quantize values in JS exactly as ORT's QuantizeLinear → DequantizeLinear does: x / scale in float32, rounded
 * half to even, plus the zero point, saturated to [qmin, qmax]; then (q − zero point) · scale in float32.
 * `scales`/`zeroPoints` have one entry (per tensor) or one per index of `axis` in `dims`.
 */
export function fakeQuantize(
  x: Float32Array,
  dims: readonly number[],
  scales: ArrayLike<number>,
  zeroPoints: ArrayLike<number>,
  qmin: number,
  qmax: number,
  axis = -1,
): Float32Array {
  const out = new Float32Array(x.length);
  const inner = axis < 0 ? x.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channels = axis < 0 ? 1 : dims[axis]!;
  for (let i = 0; i < x.length; i++) {
    const c = axis < 0 ? 0 : Math.floor(i / inner) % channels;
    const s = Math.fround(scales[c]!);
    const z = zeroPoints[c]!;
    const q = Math.min(qmax, Math.max(qmin, roundHalfEven(Math.fround(x[i]! / s)) + z));
    out[i] = Math.fround((q - z) * s);
  }
  return out;
}
