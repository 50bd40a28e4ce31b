import type { RuleSet } from "../rule.js";

/** Ops that only rearrange elements: the gradient is dY rearranged back. */
export const reshapeRules: RuleSet = {
  Reshape: (c) => [c.reshapeLike(c.dy()!, c.x())],
  Flatten: (c) => [c.reshapeLike(c.dy()!, c.x())],
  Squeeze: (c) => [c.reshapeLike(c.dy()!, c.x())],
  Unsqueeze: (c) => [c.reshapeLike(c.dy()!, c.x())],
  Transpose: (c) => {
    const rank = c.ints("perm")?.length ?? c.needRank(c.x());
    const perm = c.ints("perm") ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [c.op("Transpose", [c.dy()!], { perm: inverse })];
  },
};
