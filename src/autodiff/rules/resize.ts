import type { RuleSet } from "../rule.js";

/**
 * Resize in nearest mode with integer upscale factors on the spatial axes: every input pixel is copied into an
 * s₁×s₂ block, so dX is the block sum of dY = AveragePool(kernel = stride = s) · Πs. Holds for the coordinate
 * modes where nearest sampling replicates blocks: half_pixel / pytorch_half_pixel with round_prefer_floor or
 * round_prefer_ceil, and asymmetric with floor.
 */
export const resizeRules: RuleSet = {
  Resize: (c) => {
    const x = c.x();
    const mode = c.string("mode", "nearest");
    const coord = c.string("coordinate_transformation_mode", "half_pixel");
    const nearest = c.string("nearest_mode", "round_prefer_floor");
    if (mode !== "nearest") c.fail(`gradients of Resize mode '${mode}' are not supported (nearest is)`);
    const blocky =
      ((coord === "half_pixel" || coord === "pytorch_half_pixel") && nearest.startsWith("round_prefer")) ||
      (coord === "asymmetric" && nearest === "floor");
    if (!blocky)
      c.fail(
        `gradients need block replication; coordinate mode '${coord}' with '${nearest}' does not give it`,
      );
    const rank = c.needRank(x);
    let scales = c.x(2) ? c.constNumbers(2) : undefined;
    if (scales && scales.length === 0) scales = undefined;
    if (!scales) {
      const sizes = c.x(3) ? c.constNumbers(3) : undefined;
      const xs = c.staticShape(x);
      if (!sizes || !xs)
        return c.fail("its gradient needs constant scales, or constant sizes and a static input shape");
      scales = sizes.map((s, i) => s / xs[i]!);
    }
    if (scales.length !== rank || scales.slice(0, 2).some((s) => s !== 1))
      c.fail("its gradient needs scales of 1 on batch and channels");
    const spatial = scales.slice(2);
    if (spatial.some((s) => !Number.isInteger(s) || s < 1))
      c.fail(`its gradient needs integer upscale factors, got [${spatial}]`);
    const dy = c.dy()!;
    if (spatial.every((s) => s === 1)) return [dy];
    const total = spatial.reduce((a, b) => a * b, 1);
    const mean = c.op("AveragePool", [dy], { kernel_shape: spatial, strides: spatial });
    return [c.op("Mul", [mean, c.scalar(total, dy)])];
  },
};
