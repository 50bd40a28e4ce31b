import { type GradContext, registerGradientRule } from "../autodiff/index.js";
import { registerShapeRule } from "../onnx/shapes.js";
import { FAKE_QUANT, type FakeQuantSpec, fakeQuantSpec, QAT_DOMAIN } from "./fake-quant.js";

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
 *
 * How it is computed, with few full-size ops (each one is a pass over an activation-sized tensor):
 * - the mask compares x with the code range widened by half a step, in x's units: lo = (qmin − z − ½)·s and
 *   hi = (qmax − z + ½)·s (scalars, or [C,1,…] per channel, computed once per step), inside = (clamp(x, lo, hi) = x)
 *   as 0/1 floats: Clip (Max + Min per channel), Equal, Cast. The interval is closed at both ends: an x exactly at
 *   a half-code boundary counts as inside, where round-half-even (and PyTorch's mask on round(x/s) + z) would
 *   count one of the two ends as clipped; x/s rounded in float32 and (k ± ½)·s rounded can likewise disagree
 *   within an ulp of a boundary. Both are measure-zero sets of x. The zero point is the one the lowered forward
 *   uses (a learned one rounded half to even and saturated);
 * - the forward output x̂ is read instead of recomputing round(x/s): inside, x̂ = round(v)·s, so
 *   (round(v) − v) = (x̂ − x)/s, and outside clamp(round(v)) = x̂/s. The LSQ sum is Σ dy·(x̂ − x·inside), divided by
 *   s after the reduction. x̂ − x is formed per element before summing (it is exact inside, where x̂ and x are
 *   within half a step of each other): summing dy·x̂ and dy·inside·x separately and subtracting would cancel
 *   catastrophically on large tensors;
 * - the mask is multiplied in (Cast + Mul) rather than selected with Where, which ran 2–4× slower in ORT at these
 *   sizes (bench/step-profile);
 * - int32 fake-quant (biases) is lowered without saturation, so it passes dy through unmasked.
 */
export function fakeQuantGradient(c: GradContext): (string | undefined)[] {
  const spec = fakeQuantSpec(c.node);
  const [x, scale] = [c.x(0), c.x(1)];
  const dy = c.dy()!;
  const rank = c.needRank(x);
  const perChannel = spec.axis >= 0;
  const wantScale = c.needs(1) && spec.grad !== "ste";
  const wantZero = c.needs(2) && spec.learnZeroPoint;
  const out: (string | undefined)[] = [undefined, undefined, undefined];
  if (!c.needs(0) && !wantScale && !wantZero) return out;
  // int32: Round(x/s)·s with no clamp, every element is inside
  const inside = spec.dtype === "int32" ? undefined : insideMask(c, spec, rank);
  let dxName: string | undefined;
  const dx = (): string => (dxName ??= inside ? c.op("Mul", [dy, inside]) : dy);
  if (c.needs(0)) out[0] = dx();
  const reduce = (t: string): string => {
    if (!perChannel) return c.op("ReduceSum", [t], { keepdims: 0 });
    const axes = Array.from({ length: rank }, (_, i) => i).filter((i) => i !== spec.axis);
    return axes.length ? c.reduceSum(t, axes, false) : t;
  };
  const g = spec.gradScale;
  const withG = (t: string): string => (g !== 1 ? c.op("Mul", [t, c.scalar(g, x)]) : t);
  const xHat = c.y(0);
  // dy − dx: exactly dy where clipped, 0 inside (the outside part of the PACT and zero-point sums)
  const outsideDy =
    inside && (wantZero || (wantScale && spec.grad === "pact")) ? c.op("Sub", [dy, dx()]) : undefined;
  if (wantScale) {
    if (spec.grad === "lsq") {
      // x̂ − x·inside: inside x̂ − x (= (round(v) − v)·s), outside x̂ (= clamp(round(v))·s)
      const perElem = inside ? c.op("Sub", [xHat, c.op("Mul", [x, inside])]) : c.op("Sub", [xHat, x]);
      out[1] = withG(c.op("Div", [reduce(c.op("Mul", [dy, perElem])), scale]));
    } else {
      // pact: Σ over clipped elements of dy·x̂/s
      out[1] = outsideDy
        ? c.op("Div", [reduce(c.op("Mul", [outsideDy, xHat])), scale])
        : zerosLikeScale(c, scale);
    }
  }
  if (wantZero) {
    // Σ over the clipped elements of dy·(−s)
    const summed = outsideDy ? reduce(outsideDy) : undefined;
    out[2] = summed ? withG(c.op("Mul", [summed, c.op("Neg", [scale])])) : zerosLikeScale(c, c.x(2));
  }
  return out;
}

/** A zero gradient for a value shaped like `v` (only for int32 fake-quant, which never clips). */
function zerosLikeScale(c: GradContext, v: string): string {
  return c.op("Mul", [v, c.scalar(0, v)]);
}

/** inside as 0/1 floats, shaped like x: x within [(qmin − z − ½)·s, (qmax − z + ½)·s]. */
function insideMask(c: GradContext, spec: FakeQuantSpec, rank: number): string {
  const [x, scale, zp] = [c.x(0), c.x(1), c.x(2)];
  const perChannel = spec.axis >= 0 && rank > 1;
  // [C] → [1,…,C,…,1] so it broadcasts along `axis`
  const others = Array.from({ length: rank }, (_, i) => i).filter((i) => i !== spec.axis);
  const bcast = (v: string): string => (perChannel ? c.op("Unsqueeze", [v, c.int64s(others)]) : v);
  const s = bcast(scale);
  let kLo: string;
  let kHi: string;
  const z = spec.learnZeroPoint ? undefined : c.constNumbers(2);
  const uniform = !!z && z.length > 0 && z.every((v) => v === z[0]);
  if (z && (uniform || (spec.axis >= 0 && z.length > 1))) {
    // a fixed zero point: the bounds in code units are constants (scalars, or [1,…,C,…,1])
    const dims = Array.from({ length: rank }, (_, i) => (i === spec.axis ? z.length : 1));
    const k = (f: (v: number) => number): string =>
      uniform ? c.scalar(f(z[0]!), x) : c.floats(dims, z.map(f), x);
    kLo = k((v) => spec.qmin - v - 0.5);
    kHi = k((v) => spec.qmax - v + 0.5);
  } else {
    // the zero point the lowered forward uses: a learned one rounded half to even and saturated
    const zf = spec.learnZeroPoint
      ? c.op("Clip", [c.op("Round", [zp]), c.scalar(spec.qmin, zp), c.scalar(spec.qmax, zp)])
      : c.op("Cast", [zp], { to: 1 }, "float32");
    const zb = bcast(zf);
    kLo = c.op("Sub", [c.scalar(spec.qmin - 0.5, x), zb]);
    kHi = c.op("Sub", [c.scalar(spec.qmax + 0.5, x), zb]);
  }
  const lo = c.op("Mul", [kLo, s]);
  const hi = c.op("Mul", [kHi, s]);
  // Clip takes scalar bounds only
  const scalarBounds = !perChannel && c.shape(scale)?.length === 0 && (uniform || c.shape(zp)?.length === 0);
  const clamped = scalarBounds ? c.op("Clip", [x, lo, hi]) : c.op("Min", [c.op("Max", [x, lo]), hi]);
  return c.op("Cast", [c.op("Equal", [clamped, x], {}, "bool")], { to: 1 }, "float32");
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
