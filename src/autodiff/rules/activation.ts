import { DTYPE_CODE } from "../../onnx/dtype.js";
import type { GradContext } from "../context.js";
import type { RuleSet } from "../rule.js";

/**
 * dy where `mask` holds, else 0, as dy · float(mask): in a 2-thread training step ORT's Where took 2–4× the time of
 * Cast + Mul on activation-sized tensors (bench/step-profile.ts, cifar-cnn). Only a non-finite dy differs (NaN
 * where masked off instead of 0), and then the step is lost anyway.
 */
function where(c: GradContext, mask: string, dy: string): string {
  const dtype = c.dtype(dy);
  return c.op("Mul", [dy, c.op("Cast", [mask], { to: DTYPE_CODE[dtype] }, dtype)]);
}

/** Activation functions. Kinks take the subgradient of the flat side (ReLU at 0 → 0). */
export const activationRules: RuleSet = {
  // dy · float(y > 0). On 802,816 elements, 1 thread, no graph optimisation (ORT 1.30): ~1.0–1.2 ms per
  // application for this form and for Where(y > 0, dy, 0); Mul(dy, Sign(y)) ~2.8–3.4 ms (Sign is slow)
  Relu: (c) => [where(c, c.op("Greater", [c.y(), c.scalar(0, c.y())], {}, "bool"), c.dy()!)],

  LeakyRelu: (c) => {
    const alpha = c.float("alpha", 0.01);
    const x = c.x();
    const dy = c.dy()!;
    const slope = c.op("Where", [
      c.op("Greater", [x, c.scalar(0, x)], {}, "bool"),
      c.scalar(1, x),
      c.scalar(alpha, x),
    ]);
    return [c.op("Mul", [dy, slope])];
  },

  // σ' = y (1 - y)
  Sigmoid: (c) => {
    const y = c.y();
    return [c.op("Mul", [c.dy()!, c.op("Mul", [y, c.op("Sub", [c.scalar(1, y), y])])])];
  },

  // tanh' = 1 - y²
  Tanh: (c) => {
    const y = c.y();
    return [c.op("Mul", [c.dy()!, c.op("Sub", [c.scalar(1, y), c.op("Mul", [y, y])])])];
  },

  // softplus' = σ(x)
  Softplus: (c) => [c.op("Mul", [c.dy()!, c.op("Sigmoid", [c.x()])])],

  // y = clamp(αx + β, 0, 1): dx = α dy where 0 < y < 1
  HardSigmoid: (c) => {
    const alpha = c.float("alpha", 0.2);
    const y = c.y();
    const inside = c.op(
      "And",
      [c.op("Greater", [y, c.scalar(0, y)], {}, "bool"), c.op("Less", [y, c.scalar(1, y)], {}, "bool")],
      {},
      "bool",
    );
    return [where(c, inside, c.op("Mul", [c.dy()!, c.scalar(alpha, y)]))];
  },

  // y = x · clamp(x/6 + 1/2, 0, 1): dx = dy · (0 for x < -3, 1 for x > 3, x/3 + 1/2 between)
  HardSwish: (c) => {
    const x = c.x();
    const mid = c.op("Add", [c.op("Mul", [x, c.scalar(1 / 3, x)]), c.scalar(0.5, x)]);
    const inRange = c.op(
      "And",
      [c.op("Greater", [x, c.scalar(-3, x)], {}, "bool"), c.op("Less", [x, c.scalar(3, x)], {}, "bool")],
      {},
      "bool",
    );
    const upper = c.op("Greater", [x, c.scalar(0, x)], {}, "bool");
    const outside = c.op("Where", [upper, c.scalar(1, x), c.scalar(0, x)]);
    return [c.op("Mul", [c.dy()!, c.op("Where", [inRange, mid, outside])])];
  },

  // dx = dy where min < x < max; a trained bound gets the gradient of the elements it clips
  Clip: (c) => {
    const x = c.x();
    const dy = c.dy()!;
    const lo = c.x(1);
    const hi = c.x(2);
    const conds: string[] = [];
    if (lo) conds.push(c.op("Greater", [x, lo], {}, "bool"));
    if (hi) conds.push(c.op("Less", [x, hi], {}, "bool"));
    const out: (string | undefined)[] = [undefined, undefined, undefined];
    if (c.needs(0)) {
      out[0] =
        conds.length === 0
          ? dy
          : where(c, conds.length === 1 ? conds[0]! : c.op("And", conds, {}, "bool"), dy);
    }
    if (c.needs(1) && lo) out[1] = c.reduceTo(where(c, c.op("Not", [conds[0]!], {}, "bool"), dy), lo, c.y());
    if (c.needs(2) && hi)
      out[2] = c.reduceTo(where(c, c.op("Not", [conds[lo ? 1 : 0]!], {}, "bool"), dy), hi, c.y());
    return out;
  },
};
