import type { RuleSet } from "../rule.js";

/**
 * SoftmaxCrossEntropyLoss (scores [N, C, d…], integer labels [N, d…], optional class weights [C]). The forward
 * node is made to emit log_prob; with p = exp(log_prob) and w the per-sample weight (class weight of the label,
 * 0 where label = ignore_index):
 *   dscores = (p − onehot(label)) · w · g,  g = dL (sum), dL / Σw (mean), dL per sample (none);
 * a gradient reaching log_prob itself (label smoothing) adds dlogp − p · Σ_c dlogp.
 */
export const softmaxCrossEntropyRules: RuleSet = {
  SoftmaxCrossEntropyLoss: (c) => {
    const [scores, labels, weights] = [c.x(0), c.x(1), c.x(2)];
    const reduction = c.string("reduction", "mean");
    const ignore = c.node.attrs.ignore_index ? c.int("ignore_index", 0) : undefined;
    const logp = c.y(1);
    const p = c.op("Exp", [logp]);
    const terms: string[] = [];
    const dl = c.dy(0);
    if (dl) {
      const classes = c.shape(scores)?.[1];
      const depth =
        typeof classes === "number"
          ? c.int64s([classes])
          : c.op("Gather", [c.op("Shape", [scores], {}, "int64"), c.int64s([1])], { axis: 0 }, "int64");
      let lab = c.dtype(labels) === "int64" ? labels : c.op("Cast", [labels], { to: 7 }, "int64");
      let keep: string | undefined;
      if (ignore !== undefined) {
        keep = c.op("Not", [c.op("Equal", [lab, c.int64s([ignore])], {}, "bool")], {}, "bool");
        lab = c.op("Where", [keep, lab, c.int64s([0])], {}, "int64");
      }
      const offOn = c.floats([2], [0, 1], scores);
      const onehot = c.op("OneHot", [lab, depth, offOn], { axis: 1 }, c.dtype(scores));
      const diff = c.op("Sub", [p, onehot]);
      // per-sample weight [N, d…] (undefined = all ones)
      let w: string | undefined;
      if (weights) w = c.op("Gather", [weights, lab], { axis: 0 });
      if (keep) {
        const k = c.op("Cast", [keep], { to: c.dtype(scores) === "float64" ? 11 : 1 }, c.dtype(scores));
        w = w ? c.op("Mul", [w, k]) : k;
      }
      let g: string;
      if (reduction === "none") g = c.op("Unsqueeze", [w ? c.op("Mul", [dl, w]) : dl, c.int64s([1])]);
      else {
        let scale = dl;
        if (reduction === "mean") {
          const s = c.staticShape(labels);
          if (w) scale = c.op("Div", [dl, c.op("ReduceSum", [w], { keepdims: 0 })]);
          else if (s) scale = c.op("Mul", [dl, c.scalar(1 / s.reduce((a, b) => a * b, 1), dl)]);
          else scale = c.op("Div", [dl, c.op("CastLike", [c.op("Size", [labels], {}, "int64"), dl])]);
        } else if (reduction !== "sum") c.fail(`unknown reduction '${reduction}'`);
        g = w ? c.op("Mul", [c.op("Unsqueeze", [w, c.int64s([1])]), scale]) : scale;
      }
      terms.push(c.op("Mul", [diff, g]));
    }
    const dlogp = c.dy(1);
    if (dlogp) {
      const total = c.reduceSum(dlogp, [1], true);
      terms.push(c.op("Sub", [dlogp, c.op("Mul", [p, total])]));
    }
    return [terms.length === 1 ? terms[0] : c.op("Add", terms)];
  },
};
