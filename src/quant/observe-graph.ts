import type { Graph } from "../onnx/ir.js";
import { type Tensor, tensor, toFloat32 } from "../onnx/tensor.js";
import type { ActivationPoint, WeightPoint } from "./placement.js";

/**
 * Observers inside the training graph, for the first steps of QAT (as PyTorch's FakeQuantize with its observer
 * enabled): each step re-estimates the quantization parameters and fake-quantizes with them, and the new values are
 * buffers the next step reads. Activations: moving-average min-max, r ← r + c·(batch − r) (c = 0.01), kept as
 * buffers `<tensor>.observer_min/max`; weights: the current per-channel |max| (symmetric weights). Scales and
 * zero points are written to the same names the learned phase uses as parameters, so training continues from the
 * observed values when the observers freeze. Observed scales get no gradient.
 */
export interface ObservedValues {
  /** Buffer name → initial value. */
  buffers: Map<string, Tensor>;
  /** Buffer name → value holding it after the step. */
  updates: Map<string, string>;
  /** Point scale/zero-point name → the value the fake-quant node should read this step. */
  current: Map<string, string>;
}

const AVERAGING = 0.01;
const EPS = 1e-8;

export function observeActivation(
  g: Graph,
  a: ActivationPoint,
  scale: Tensor,
  zeroPoint: Tensor,
  out: ObservedValues,
): void {
  const k = (base: string, v: number, dtype: "float32" | "uint8" | "int8" = "float32") =>
    g.constant(`qat.${a.value}.${base}`, tensor(dtype, [], [v]));
  const s0 = toFloat32(scale)[0]!;
  const z0 = Number(toFloat32(zeroPoint)[0]!);
  const minName = `${a.value}.observer_min`;
  const maxName = `${a.value}.observer_max`;
  out.buffers.set(minName, tensor("float32", [], [(a.spec.qmin - z0) * s0]));
  out.buffers.set(maxName, tensor("float32", [], [(a.spec.qmax - z0) * s0]));
  for (const n of [minName, maxName]) g.initializers.set(n, out.buffers.get(n)!);
  const ema = (old: string, batch: string, name: string) =>
    g.op(
      "Add",
      [old, g.op("Mul", [g.op("Sub", [batch, old]), k("averaging", AVERAGING)])],
      {},
      { output: g.uniqueName(name) },
    );
  const bmin = g.op("ReduceMin", [a.value], { keepdims: 0 });
  const bmax = g.op("ReduceMax", [a.value], { keepdims: 0 });
  const min = ema(minName, bmin, `${minName}.next`);
  const max = ema(maxName, bmax, `${maxName}.next`);
  out.updates.set(minName, min);
  out.updates.set(maxName, max);
  const { qmin, qmax } = a.spec;
  let s: string;
  let z: string;
  if (a.cfg.symmetric) {
    const amax = g.op("Max", [g.op("Abs", [min]), g.op("Abs", [max])]);
    s = g.op(
      "Max",
      [g.op("Div", [amax, k("qmax", qmax)]), k("eps", EPS)],
      {},
      { output: g.uniqueName(`${a.scale}.next`) },
    );
    z = g.op("Identity", [a.zeroPoint], {}, { output: g.uniqueName(`${a.zeroPoint}.next`) });
  } else {
    const lo = g.op("Min", [min, k("zero", 0)]);
    const hi = g.op("Max", [max, k("zero", 0)]);
    s = g.op(
      "Max",
      [g.op("Div", [g.op("Sub", [hi, lo]), k("levels", qmax - qmin)]), k("eps", EPS)],
      {},
      {
        output: g.uniqueName(`${a.scale}.next`),
      },
    );
    const zf = g.op("Clip", [
      g.op("Round", [g.op("Sub", [k("qmin", qmin), g.op("Div", [lo, s])])]),
      k("qmin", qmin),
      k("qmax", qmax),
    ]);
    z = g.op(
      "Cast",
      [zf],
      { to: a.spec.dtype === "uint8" ? 2 : 3 },
      { output: g.uniqueName(`${a.zeroPoint}.next`) },
    );
  }
  out.updates.set(a.scale, s);
  out.updates.set(a.zeroPoint, z);
  out.current.set(a.scale, s);
  out.current.set(a.zeroPoint, z);
}

/** Symmetric weights: s = max(|w|) / qmax per channel, recomputed from the (folded) weight each step. */
export function observeWeight(
  g: Graph,
  w: WeightPoint,
  weightValue: string,
  rank: number,
  out: ObservedValues,
): void {
  const axes = Array.from({ length: rank }, (_, i) => i).filter((i) => w.spec.axis < 0 || i !== w.spec.axis);
  const amax = g.op("ReduceMax", [g.op("Abs", [weightValue])], { axes, keepdims: 0 });
  const q = g.constant(`qat.${w.weight}.qmax`, tensor("float32", [], [w.spec.qmax]));
  const eps = g.constant(`qat.${w.weight}.eps`, tensor("float32", [], [EPS]));
  const s = g.op("Max", [g.op("Div", [amax, q]), eps], {}, { output: g.uniqueName(`${w.scale}.next`) });
  const z = g.op("Identity", [w.zeroPoint], {}, { output: g.uniqueName(`${w.zeroPoint}.next`) });
  out.updates.set(w.scale, s);
  out.updates.set(w.zeroPoint, z);
  out.current.set(w.scale, s);
  out.current.set(w.zeroPoint, z);
}
