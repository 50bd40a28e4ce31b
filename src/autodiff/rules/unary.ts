import type { RuleSet } from "../rule.js";

/** Elementwise math functions; each gradient reuses the forward output where that saves work. */
export const unaryRules: RuleSet = {
  Exp: (c) => [c.op("Mul", [c.dy()!, c.y()])],
  Log: (c) => [c.op("Div", [c.dy()!, c.x()])],
  // d sqrt(x) = 0.5 / sqrt(x)
  Sqrt: (c) => [c.op("Div", [c.op("Mul", [c.dy()!, c.scalar(0.5, c.x())]), c.y()])],
  Reciprocal: (c) => [c.op("Neg", [c.op("Mul", [c.dy()!, c.op("Mul", [c.y(), c.y()])])])],
  // sign(0) = 0: the subgradient 0 at the kink
  Abs: (c) => [c.op("Mul", [c.dy()!, c.op("Sign", [c.x()])])],
  Identity: (c) => [c.dy()],
};
