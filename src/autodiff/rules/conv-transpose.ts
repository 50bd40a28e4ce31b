import type { RuleSet } from "../rule.js";
import { convWeightGrad } from "./conv-geometry.js";

/**
 * ConvTranspose with explicit pads (or VALID): it is the adjoint of a Conv with the same attributes, so
 * dX = Conv(dY, W) and dW is that Conv's weight gradient with the roles of input and output swapped.
 */
export const convTransposeRules: RuleSet = {
  ConvTranspose: (c) => {
    const [x, w, b] = [c.x(0), c.x(1), c.x(2)];
    const dy = c.dy()!;
    const ws = c.needShape(w, "the ConvTranspose gradient");
    const kernel = ws.slice(2);
    const group = c.int("group", 1);
    const autoPad = c.string("auto_pad", "NOTSET");
    if (c.ints("output_shape") || (autoPad !== "NOTSET" && autoPad !== "VALID")) {
      c.fail("gradients need explicit pads (no output_shape, no SAME auto_pad)");
    }
    const spatial = kernel.length;
    const strides = c.ints("strides") ?? new Array(spatial).fill(1);
    const dilations = c.ints("dilations") ?? new Array(spatial).fill(1);
    const pads =
      autoPad === "VALID"
        ? new Array(2 * spatial).fill(0)
        : (c.ints("pads") ?? new Array(2 * spatial).fill(0));
    const out: (string | undefined)[] = [undefined, undefined, undefined];
    if (c.needs(0)) out[0] = c.op("Conv", [dy, w], { strides, dilations, pads, group });
    if (c.needs(1)) {
      // the adjoint Conv maps y (size Hy) to x (size Hx): its geometry has y as input and x as output
      const xs = c.needShape(x, "the ConvTranspose weight gradient").slice(2);
      const outSize = c.staticShape(c.y())?.slice(2);
      if (!outSize) return c.fail(`the weight gradient needs the static spatial size of '${c.y()}'`);
      const geo = {
        inSize: outSize,
        outSize: xs,
        kernel,
        strides,
        dilations,
        padBegin: pads.slice(0, spatial),
        padEnd: pads.slice(spatial),
      };
      out[1] = convWeightGrad(c, dy, x, geo, group, ws[1]! * group);
    }
    if (c.needs(2) && b) out[2] = c.reduceSum(dy, [0, ...kernel.map((_, i) => i + 2)], false);
    return out;
  },
};
