import type { RuleSet } from "../rule.js";

/**
 * BatchNormalization. In training mode (training_mode = 1) the statistics are the batch's own, so
 *   x̂ = (x - μ_B) / σ_B,  dscale = Σ dy·x̂,  dB = Σ dy,  dx = scale/σ_B · (dy - dB/n - x̂·dscale/n)
 * (sums over every axis but the channel one, n elements per channel). μ_B and σ_B are recomputed here, since
 * opset 14+ BatchNormalization does not output them. In inference mode the statistics are constants:
 * dx = dy·scale/σ, dscale = Σ dy·x̂, dB = Σ dy.
 */
export const batchNormRules: RuleSet = {
  BatchNormalization: (c) => {
    const [x, scale, mean, variance] = [c.x(0), c.x(1), c.x(3), c.x(4)];
    const dy = c.dy()!;
    const rank = c.needRank(x);
    const eps = c.float("epsilon", 1e-5);
    const training = c.int("training_mode", 0) === 1;
    const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
    // per-channel vectors [C] broadcast as [C, 1, …]
    const perChannel = (v: string) =>
      c.op("Unsqueeze", [v, c.int64s(Array.from({ length: rank - 2 }, (_, i) => i + 1))]);
    const out: (string | undefined)[] = [undefined, undefined, undefined, undefined, undefined];
    let mu: string;
    let invStd: string;
    if (training) {
      mu = c.op("ReduceMean", [x], { axes, keepdims: 1 });
      const centred = c.op("Sub", [x, mu]);
      const varB = c.op("ReduceMean", [c.op("Mul", [centred, centred])], { axes, keepdims: 1 });
      invStd = c.op("Reciprocal", [c.op("Sqrt", [c.op("Add", [varB, c.scalar(eps, x)])])]);
      const xhat = c.op("Mul", [centred, invStd]);
      const dBias = c.reduceSum(dy, axes, true);
      const dScale = c.reduceSum(c.op("Mul", [dy, xhat]), axes, true);
      if (c.needs(0)) {
        const s = c.staticShape(x);
        let inner: string;
        if (s) {
          const n = axes.reduce((p, a) => p * s[a]!, 1);
          const centredDy = c.op("Sub", [dy, c.op("Mul", [dBias, c.scalar(1 / n, x)])]);
          inner = c.op("Sub", [centredDy, c.op("Mul", [xhat, c.op("Mul", [dScale, c.scalar(1 / n, x)])])]);
        } else {
          // n unknown statically: mean(dy) and mean(dy·x̂) directly
          const mdy = c.op("ReduceMean", [dy], { axes, keepdims: 1 });
          const mdyx = c.op("ReduceMean", [c.op("Mul", [dy, xhat])], { axes, keepdims: 1 });
          inner = c.op("Sub", [c.op("Sub", [dy, mdy]), c.op("Mul", [xhat, mdyx])]);
        }
        out[0] = c.op("Mul", [inner, c.op("Mul", [perChannel(scale), invStd])]);
      }
      if (c.needs(1)) out[1] = c.op("Reshape", [dScale, c.int64s([-1])]);
      if (c.needs(2)) out[2] = c.op("Reshape", [dBias, c.int64s([-1])]);
      return out;
    }
    mu = perChannel(mean);
    invStd = c.op("Reciprocal", [c.op("Sqrt", [c.op("Add", [perChannel(variance), c.scalar(eps, x)])])]);
    if (c.needs(0)) out[0] = c.op("Mul", [dy, c.op("Mul", [perChannel(scale), invStd])]);
    if (c.needs(1))
      out[1] = c.reduceSum(c.op("Mul", [dy, c.op("Mul", [c.op("Sub", [x, mu]), invStd])]), axes, false);
    if (c.needs(2)) out[2] = c.reduceSum(dy, axes, false);
    if (c.needs(3) || c.needs(4)) c.fail("gradients for the running mean/variance inputs are not supported");
    return out;
  },
};
