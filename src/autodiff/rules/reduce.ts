import type { GradContext } from "../context.js";
import type { RuleSet } from "../rule.js";

/** The reduced axes (normalised) of a ReduceSum/ReduceMean: attribute (opset < 18 ReduceMean) or input. */
function reducedAxes(c: GradContext, rank: number): number[] {
  const fromAttr = c.ints("axes");
  const fromInput = c.x(1) ? c.constNumbers(1) : undefined;
  if (c.x(1) && !fromInput) c.fail("its gradient needs constant axes");
  const axes = fromAttr ?? fromInput ?? [];
  if (axes.length === 0)
    return c.int("noop_with_empty_axes", 0) ? [] : Array.from({ length: rank }, (_, i) => i);
  return axes.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
}

/** dY with the reduced axes restored (size 1), then broadcast to X's shape. */
function spread(c: GradContext, dy: string, axes: number[]): string {
  const kept = c.int("keepdims", 1) === 1 || axes.length === 0 ? dy : c.op("Unsqueeze", [dy, c.int64s(axes)]);
  return c.op("Expand", [kept, c.shapeFor(c.x(), false)]);
}

export const reduceRules: RuleSet = {
  ReduceSum: (c) => {
    const axes = reducedAxes(c, c.needRank(c.x()));
    return [axes.length === 0 ? c.dy() : spread(c, c.dy()!, axes)];
  },
  ReduceMean: (c) => {
    const x = c.x();
    const axes = reducedAxes(c, c.needRank(x));
    if (axes.length === 0) return [c.dy()];
    const s = c.shape(x)!;
    const dims = axes.map((a) => s[a]);
    const dy = c.dy()!;
    let scaled: string;
    if (dims.every((d) => typeof d === "number")) {
      scaled = c.op("Mul", [dy, c.scalar(1 / (dims as number[]).reduce((p, d) => p * d, 1), dy)]);
    } else {
      // count unknown statically: |X| / |Y|
      const count = c.op(
        "Div",
        [c.op("Size", [x], {}, "int64"), c.op("Size", [c.y()], {}, "int64")],
        {},
        "int64",
      );
      scaled = c.op("Div", [dy, c.op("CastLike", [count, dy])]);
    }
    return [spread(c, scaled, axes)];
  },
};
