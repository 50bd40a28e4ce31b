import type { RuleSet } from "../rule.js";

/**
 * Broadcasting arithmetic. Each input's gradient is summed back to its own shape (`reduceTo`: leading axes it
 * lacks and axes where it has size 1, found from static shapes).
 */
export const elementwiseRules: RuleSet = {
  Add: (c) => {
    const dy = c.dy()!;
    return [
      c.needs(0) ? c.reduceTo(dy, c.x(0), c.y()) : undefined,
      c.needs(1) ? c.reduceTo(dy, c.x(1), c.y()) : undefined,
    ];
  },

  Sub: (c) => {
    const dy = c.dy()!;
    return [
      c.needs(0) ? c.reduceTo(dy, c.x(0), c.y()) : undefined,
      c.needs(1) ? c.op("Neg", [c.reduceTo(dy, c.x(1), c.y())]) : undefined,
    ];
  },

  // Sum as a graph op (the walker's own fan-out sums are emitted after the forward and never differentiated)
  Sum: (c) => c.node.inputs.map((x, i) => (c.needs(i) ? c.reduceTo(c.dy()!, x, c.y()) : undefined)),

  Mul: (c) => {
    const dy = c.dy()!;
    const [a, b] = [c.x(0), c.x(1)];
    // x * x: one node for the whole gradient instead of two summed ones
    if (a === b) return [c.op("Mul", [c.op("Mul", [dy, a]), c.scalar(2, a)])];
    return [
      c.needs(0) ? c.reduceTo(c.op("Mul", [dy, b]), a, c.y()) : undefined,
      c.needs(1) ? c.reduceTo(c.op("Mul", [dy, a]), b, c.y()) : undefined,
    ];
  },

  // y = a / b: da = dy / b, db = -dy * a / b² = -(dy / b) * y
  Div: (c) => {
    const dy = c.dy()!;
    const [a, b] = [c.x(0), c.x(1)];
    const dyOverB = c.op("Div", [dy, b]);
    return [
      c.needs(0) ? c.reduceTo(dyOverB, a, c.y()) : undefined,
      c.needs(1) ? c.reduceTo(c.op("Neg", [c.op("Mul", [dyOverB, c.y()])]), b, c.y()) : undefined,
    ];
  },

  Neg: (c) => [c.op("Neg", [c.dy()!])],

  // y = x^p: dx = dy * p * x^(p-1) (constant p folded: p = 2 → 2x, p = 1 → dy, p = 0.5 → 0.5 / y);
  // dp = dy * y * ln(x) when the exponent is trained too
  Pow: (c) => {
    const dy = c.dy()!;
    const x = c.x(0);
    const out: (string | undefined)[] = [undefined, undefined];
    if (c.needs(0)) {
      const p = c.constNumbers(1);
      let dx: string;
      if (p && p.length === 1 && !c.needs(1)) {
        const e = p[0]!;
        if (e === 1) dx = dy;
        else if (e === 2) dx = c.op("Mul", [dy, c.op("Mul", [x, c.scalar(2, x)])]);
        else if (e === 0.5) dx = c.op("Div", [c.op("Mul", [dy, c.scalar(0.5, x)]), c.y()]);
        else dx = c.op("Mul", [dy, c.op("Mul", [c.op("Pow", [x, c.scalar(e - 1, x)]), c.scalar(e, x)])]);
      } else {
        // general exponent: p * x^(p-1) = p * y / x would divide by zero at x = 0, so compute x^(p-1) directly
        const pm1 = c.op("Sub", [c.x(1), c.scalar(1, c.x(1))]);
        dx = c.op("Mul", [dy, c.op("Mul", [c.op("Pow", [x, pm1]), c.x(1)])]);
      }
      out[0] = c.reduceTo(dx, x, c.y());
    }
    if (c.needs(1))
      out[1] = c.reduceTo(c.op("Mul", [dy, c.op("Mul", [c.y(), c.op("Log", [x])])]), c.x(1), c.y());
    return out;
  },
};
