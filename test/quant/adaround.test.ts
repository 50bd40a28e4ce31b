import { describe, expect, it } from "vitest";
import { gradCheck } from "../../src/autodiff/gradcheck.js";
import { openDataset } from "../../src/data/open.js";
import { zooModel } from "../../src/nn/zoo.js";
import { tensor, toFloat32 } from "../../src/onnx/tensor.js";
import { adaround } from "../../src/quant/adaround.js";
import {
  type AdaRoundLayer,
  appendAdaRoundLoss,
  GAMMA,
  initialV,
  ZETA,
} from "../../src/quant/adaround-graph.js";
import { effectiveWeight } from "../../src/quant/calibrate.js";
import { fakeQuantize } from "../../src/quant/fake-quant.js";
import { placeQuant } from "../../src/quant/placement.js";
import { preset } from "../../src/quant/qconfig.js";
import { seeded } from "../helpers/random.js";

const r = seeded(9);
const ints = (n: number, lo: number, hi: number) =>
  Float32Array.from({ length: n }, () => lo + Math.floor((hi - lo + 1) * r()));

function layerOf(
  op: "Conv" | "Gemm",
  weightDims: number[],
  io: { input: number[]; output: number[] },
): AdaRoundLayer {
  const n = weightDims.reduce((a, b) => a * b, 1);
  const out = weightDims[0]!;
  const sdims = weightDims.map((d, i) => (i === 0 ? d : 1));
  return {
    name: "l",
    op,
    attrs:
      op === "Conv"
        ? { pads: { type: "ints", value: [1, 1, 1, 1] }, kernel_shape: { type: "ints", value: [3, 3] } }
        : { transB: { type: "int", value: 1 } },
    weightDims,
    // ⌊W/s⌋ + z, with a few at the clipping bounds (−8, 7) so the clip's zero gradient is exercised
    floorQ: ints(n, -8, 7),
    scale: tensor(
      "float32",
      sdims,
      Float32Array.from({ length: out }, () => 0.05 + 0.2 * r()),
    ),
    zeroPoint: tensor("float32", sdims, new Float32Array(out)),
    qmin: -8,
    qmax: 7,
    bias: Float32Array.from({ length: out }, () => r() - 0.5),
    inputShape: io.input,
    outputShape: io.output,
  };
}

describe("AdaRound loss gradient (finite differences)", () => {
  // V drawn in (−2, 2): h(V) = clip(1.2σ(V) − 0.1, 0, 1) has kinks at σ(V) = 1/12 and 11/12 (|V| ≈ 2.40), which
  // central differences cannot see across; β and λ are graph values (as the annealing schedule feeds them)
  const vData = (n: number) => Float32Array.from({ length: n }, () => 4 * r() - 2);

  it("Gemm, float64, every element", async () => {
    const layer = layerOf("Gemm", [3, 5], { input: [5], output: [3] });
    const res = await gradCheck({
      dtype: "float64",
      elementwise: 15,
      inputs: {
        v: { dims: [3, 5], data: vData(15) },
        x: { dims: [4, 5], wrt: false },
        target: { dims: [4, 3], wrt: false },
        beta: { dims: [], data: [3.5], wrt: false },
        lambda: { dims: [], data: [0.7], wrt: false },
      },
      build: (g) =>
        appendAdaRoundLoss(g, layer, { v: "v", x: "x", target: "target", beta: "beta", regWeight: "lambda" })
          .loss,
    });
    expect(res.maxError).toBeLessThan(1e-6);
  });

  it("Conv (float32 kernels only), directional", async () => {
    const layer = layerOf("Conv", [4, 2, 3, 3], { input: [2, 5, 5], output: [4, 5, 5] });
    const res = await gradCheck({
      dtype: "float32",
      eps: 1e-2,
      directions: 4,
      inputs: {
        v: { dims: [4, 2, 3, 3], data: vData(72) },
        x: { dims: [2, 2, 5, 5], wrt: false },
        target: { dims: [2, 4, 5, 5], wrt: false },
        beta: { dims: [], data: [2.5], wrt: false },
        lambda: { dims: [], data: [0.3], wrt: false },
      },
      build: (g) =>
        appendAdaRoundLoss(g, layer, { v: "v", x: "x", target: "target", beta: "beta", regWeight: "lambda" })
          .loss,
    });
    // the loss is not linear in V (σ, |·|^β): central differences carry an O(ε²) error on top of float32 rounding
    expect(res.maxError).toBeLessThan(1e-2);
  });
});

describe("AdaRound", () => {
  it("starts from h(V) = the fractional part", () => {
    const frac = Float32Array.of(0, 0.25, 0.5, 0.999);
    const v = initialV(frac);
    v.forEach((x, i) => {
      const h = Math.min(1, Math.max(0, (ZETA - GAMMA) / (1 + Math.exp(-x)) + GAMMA));
      expect(h).toBeCloseTo(frac[i]!, 5);
    });
  });

  it("beats round-to-nearest on held-out inputs for every layer of mnist-cnn at 4-bit per-channel weights", async () => {
    const net = zooModel("mnist-cnn", { seed: 4 });
    // real digits: on i.i.d. noise images the first layer's input has no structure for AdaRound to exploit
    const data = await openDataset("../shared/data/mnist", { split: "test" });
    const qconfig = preset("w4a8");
    const res = await adaround(net, data, {
      qconfig,
      iterations: 300,
      lr: 0.05,
      samples: 640,
      holdOut: 128,
      seed: 1,
      threads: 1,
    });
    expect(res.layers.map((l) => l.layer)).toEqual(["conv1", "conv2", "fc"]);
    for (const l of res.layers) {
      console.log(
        `${l.layer}: reconstruction MSE nearest ${l.nearestError.toExponential(3)} → AdaRound ${l.adaroundError.toExponential(3)}, flipped ${(100 * l.flipped).toFixed(1)}%, undecided ${(100 * l.undecided).toFixed(1)}%, ${l.seconds.toFixed(1)} s`,
      );
      expect(l.adaroundError).toBeLessThan(l.nearestError);
      expect(l.flipped).toBeGreaterThan(0);
    }
    // the returned weights lie on the grid of the returned scales: fake-quantizing them changes nothing
    const placement = placeQuant(net, qconfig);
    for (const w of placement.weights) {
      const wt = res.weights.get(w.weight)!;
      const s = toFloat32(res.qparams.get(w.scale)!);
      const z = Array.from(toFloat32(res.qparams.get(w.zeroPoint)!));
      const v = toFloat32(wt);
      expect(fakeQuantize(v, wt.dims, s, z, w.spec.qmin, w.spec.qmax, w.spec.axis)).toEqual(v);
      // and they differ from round-to-nearest of the original weight
      const nearest = fakeQuantize(
        effectiveWeight(net, w),
        wt.dims,
        s,
        z,
        w.spec.qmin,
        w.spec.qmax,
        w.spec.axis,
      );
      expect(nearest).not.toEqual(v);
    }
  }, 120_000);
});
