import type { RuleSet } from "../rule.js";

/** Softmax and LogSoftmax along one axis (opset 13+ semantics), from their outputs. */
export const softmaxRules: RuleSet = {
  // dx = y ⊙ (dy − Σ dy ⊙ y)
  Softmax: (c) => {
    const y = c.y();
    const dy = c.dy()!;
    const axis = c.int("axis", -1);
    const dot = c.reduceSum(c.op("Mul", [dy, y]), [axis], true);
    return [c.op("Mul", [y, c.op("Sub", [dy, dot])])];
  },
  // dx = dy − exp(y) ⊙ Σ dy
  LogSoftmax: (c) => {
    const y = c.y();
    const dy = c.dy()!;
    const axis = c.int("axis", -1);
    const total = c.reduceSum(dy, [axis], true);
    return [c.op("Sub", [dy, c.op("Mul", [c.op("Exp", [y]), total])])];
  },
};
