import type { RuleSet } from "../rule.js";

/**
 * Dropout (opset 12+). In training mode the forward node is made to emit its mask and dX = dY·mask/(1 − ratio);
 * in inference mode (training_mode absent or false) Dropout is the identity.
 */
export const dropoutRules: RuleSet = {
  Dropout: (c) => {
    const dy = c.dy()!;
    const modeInput = c.x(2);
    if (!modeInput) return [dy];
    const mode = c.constNumbers(2);
    if (mode && mode[0] === 0) return [dy];
    const mask = c.y(1);
    const ratio = c.x(1) ? c.constNumbers(1) : [0.5];
    const scaled = ratio
      ? c.op("Mul", [dy, c.scalar(1 / (1 - ratio[0]!), dy)])
      : c.op("Div", [dy, c.op("Sub", [c.scalar(1, c.x(1)), c.x(1)])]);
    if (!mode) {
      // training_mode fed at run time: the mask is all true when it is false, and then the scale is 1
      const scale = c.op("Where", [modeInput, scaled, dy]);
      return [c.op("Where", [mask, scale, c.scalar(0, dy)])];
    }
    return [c.op("Where", [mask, scaled, c.scalar(0, dy)])];
  },
};
