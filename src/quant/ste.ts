import { type GradContext, registerGradientRule } from "../autodiff/index.js";
import { registerShapeRule } from "../onnx/shapes.js";
import { FAKE_QUANT, fakeQuantSpec, QAT_DOMAIN } from "./fake-quant.js";

/**
 * The backward pass of FakeQuantize (x̂ = (clamp(round(v) + z, qmin, qmax) − z)·s, v = x/s):
 *
 *   inside  = qmin ≤ round(v) + z ≤ qmax
 *   dx      = dy where inside, else 0                                         (straight-through estimator)
 *   ds      = g · Σ dy · (inside ? round(v) − v : clamp(round(v), qmin−z, qmax−z))  (LSQ, Esser et al. 2019)
 *   ds      = Σ dy · (inside ? 0 : clamp(round(v), qmin−z, qmax−z))          ("pact": only clipped values move the
 *                                                                              range, as PACT's dy/dα, Choi et al.)
 *   dz      = g · Σ dy · (inside ? 0 : −s)                                    (learned zero point)
 *
 * Sums run over every axis but the per-channel one. "ste" scales get no gradient.
 */
export function fakeQuantGradient(c: GradContext): (string | undefined)[] {
  const spec = fakeQuantSpec(c.node);
  const [x, scale, zp] = [c.x(0), c.x(1), c.x(2)];
  const dy = c.dy()!;
  const rank = c.needRank(x);
  const perChannel = spec.axis >= 0;
  const axis = spec.axis;
  // [C] → [1,…,C,…,1] so it broadcasts along `axis`
  const bcast = (v: string): string =>
    perChannel && rank > 1
      ? c.op("Unsqueeze", [v, c.int64s(Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis))])
      : v;
  const s = bcast(scale);
  const v = c.op("Div", [x, s]);
  const r = c.op("Round", [v]);
  const zf = spec.learnZeroPoint ? zp : c.op("Cast", [zp], { to: 1 }, "float32");
  const lo = c.op("Sub", [c.scalar(spec.qmin, x), bcast(zf)]);
  const hi = c.op("Sub", [c.scalar(spec.qmax, x), bcast(zf)]);
  // inside ⇔ lo ≤ r ≤ hi ⇔ clamp(r) = r: one Equal on the clamp the scale gradient needs anyway, and the mask as
  // 0/1 floats multiplied in, since ORT's Where ran 2–4× slower than Cast + Mul on these sizes (bench/step-profile)
  const clipped = c.op("Min", [c.op("Max", [r, lo]), hi]);
  const inside = c.op("Cast", [c.op("Equal", [clipped, r], {}, "bool")], { to: 1 }, "float32");
  const out: (string | undefined)[] = [undefined, undefined, undefined];
  if (c.needs(0)) out[0] = c.op("Mul", [dy, inside]);
  const reduce = (t: string): string => {
    if (!perChannel) return c.op("ReduceSum", [t], { keepdims: 0 });
    const axes = Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis);
    return axes.length ? c.reduceSum(t, axes, false) : t;
  };
  const g = spec.gradScale;
  if (c.needs(1) && spec.grad !== "ste") {
    // inside: clipped = r, so clipped − v·1 = r − v exactly; outside: clipped − v·0 = clipped (lsq), and
    // clipped − clipped·1 = 0 inside, clipped outside (pact)
    const perElem = c.op("Sub", [clipped, c.op("Mul", [spec.grad === "lsq" ? v : clipped, inside])]);
    let ds = reduce(c.op("Mul", [dy, perElem]));
    if (spec.grad === "lsq" && g !== 1) ds = c.op("Mul", [ds, c.scalar(g, x)]);
    out[1] = ds;
  }
  if (c.needs(2) && spec.learnZeroPoint) {
    // Σ over the clipped elements of dy·(−s): dy − dy·inside is exactly dy outside and 0 inside
    const outsideDy = c.op("Sub", [dy, out[0] ?? c.op("Mul", [dy, inside])]);
    const dz = c.op("Mul", [reduce(outsideDy), c.op("Neg", [scale])]);
    out[2] = g !== 1 ? c.op("Mul", [dz, c.scalar(g, x)]) : dz;
  }
  return out;
}

let registered = false;

/** Register the FakeQuantize gradient with autodiff (idempotent). */
export function registerFakeQuantGradient(): void {
  if (registered) return;
  registerGradientRule(FAKE_QUANT, fakeQuantGradient, { domain: QAT_DOMAIN });
  // its output has the input's dtype and shape
  registerShapeRule(QAT_DOMAIN, FAKE_QUANT, (c) => [{ dtype: c.dtype(0), shape: c.shape(0) }]);
  registered = true;
}

registerFakeQuantGradient();
