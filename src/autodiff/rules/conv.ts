import type { RuleSet } from "../rule.js";
import { convGeometry, convWeightGrad, transposedPads } from "./conv-geometry.js";

/**
 * Conv (any rank, strides, pads or auto_pad, dilations, groups incl. depthwise):
 * dX = ConvTranspose(dY, W) with output_padding landing on X's size; dW = Conv of X with dY (batch as the
 * contraction, see convWeightGrad); dB = ΣdY over batch and space.
 */
export const convRules: RuleSet = {
  Conv: (c) => {
    const [x, w, b] = [c.x(0), c.x(1), c.x(2)];
    const dy = c.dy()!;
    const ws = c.needShape(w, "the Conv gradient");
    const kernel = ws.slice(2);
    const group = c.int("group", 1);
    const geo = convGeometry(c, x, c.y(), kernel);
    const out: (string | undefined)[] = [undefined, undefined, undefined];
    if (c.needs(0)) {
      const { pads, outputPadding } = transposedPads(geo);
      const attrs: Record<string, number[] | number> = {
        strides: geo.strides,
        dilations: geo.dilations,
        pads,
        group,
      };
      if (outputPadding.some((p) => p > 0)) attrs.output_padding = outputPadding;
      out[0] = c.op("ConvTranspose", [dy, w], attrs);
    }
    if (c.needs(1)) out[1] = convWeightGrad(c, x, dy, geo, group, ws[1]! * group);
    if (c.needs(2) && b) out[2] = c.reduceSum(dy, [0, ...kernel.map((_, i) => i + 2)], false);
    return out;
  },
};
