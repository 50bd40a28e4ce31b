import type { RuleSet } from "../rule.js";

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/** Concat and Split are each other's gradient. */
export const concatSplitRules: RuleSet = {
  // one Split of dY along the axis, with every input's static size there
  Concat: (c) => {
    const rank = c.needRank(c.y());
    const axis = normAxis(c.int("axis", 0), rank);
    const sizes = c.node.inputs.map((x) => c.shape(x)?.[axis]);
    if (!sizes.every((s) => typeof s === "number"))
      c.fail(`its gradient needs every input's static size on axis ${axis}`);
    const parts = c.g.add(
      "Split",
      [c.dy()!, c.int64s(sizes as number[])],
      { axis },
      { outputs: sizes.length, name: `${c.node.name}_grad_Split` },
    );
    parts.forEach((p, i) => {
      c.info.note(p, c.dtype(c.x(i)));
    });
    return parts.map((p, i) => (c.needs(i) ? p : undefined));
  },

  // Concat of the outputs' gradients; outputs nobody differentiates contribute zeros
  Split: (c) => {
    const rank = c.needRank(c.x());
    const axis = normAxis(c.int("axis", 0), rank);
    const parts = c.node.outputs.map((o, i) => c.dy(i) ?? c.zerosLike(o));
    return [parts.length === 1 ? parts[0] : c.op("Concat", parts, { axis })];
  },
};
