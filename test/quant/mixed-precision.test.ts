import * as ort from "onnxruntime-node";
import { describe, expect, test } from "vitest";
import { exportCheckpoint } from "../../src/export/export.js";
import type { PlacementRow } from "../../src/export/source.js";
import { NetBuilder } from "../../src/nn/builder.js";
import { loadStateDict, type NetModel } from "../../src/nn/model.js";
import { f32, type Tensor, toFloat32 } from "../../src/onnx/tensor.js";
import {
  type Candidate,
  chooseMixedPrecision,
  MixedPrecisionError,
} from "../../src/quant/mixed-precision.js";
import { placementTable } from "../../src/quant/placement.js";
import { EvalRunner } from "../../src/train/step.js";
import { seeded } from "../helpers/random.js";
import { synthDataset } from "./fixtures.js";

/**
 * fc1 (16→32) ReLU fc2 (32→32) ReLU fc3 (32→10). fc1's unit 0 never fires (bias −1e4), and fc2 reads it with a
 * weight of 60 in every row: in float that weight multiplies zero and changes nothing, but it sets every row's
 * weight scale, so at 4 bits (and still at 8) fc2's other weights (|w| < 1) round to zero. fc2 is the one layer
 * that must not be quantized; fc1 and fc3 lose little.
 */
function sensitiveNet(): NetModel {
  const b = new NetBuilder("sensitive", [16], { seed: 3 });
  let x = b.relu(b.linear(b.input, { name: "fc1", out: 32 }));
  x = b.relu(b.linear(x, { name: "fc2", out: 32 }));
  const net = b.build(b.linear(x, { name: "fc3", out: 10 }));
  const r = seeded(5);
  const normal = (n: number, s: number) =>
    Float32Array.from({ length: n }, () => s * (r() + r() + r() - 1.5));
  const w2 = normal(32 * 32, 0.5);
  for (let o = 0; o < 32; o++) w2[o * 32] = 60;
  const b1 = normal(32, 10);
  b1[0] = -1e4;
  loadStateDict(net, {
    "fc1.weight": f32([32, 16], normal(32 * 16, 0.05)),
    "fc1.bias": f32([32], b1),
    "fc2.weight": f32([32, 32], w2),
  });
  return net;
}

const data = synthDataset([16], 256, 4);
const inputs: Tensor = (() => {
  const x = new Float32Array(256 * 16);
  data.fill(
    Array.from({ length: 256 }, (_, i) => i),
    x,
    new BigInt64Array(256),
  );
  return f32([256, 16], x);
})();

async function outputsOf(net: NetModel): Promise<Float32Array> {
  const ev = await EvalRunner.create(net, { threads: 1, optimization: "basic" });
  try {
    return toFloat32((await ev.run(inputs)).logits).slice();
  } finally {
    await ev.release();
  }
}

/** Signal-to-quantization-noise ratio of the outputs against float, in dB. */
function sqnr(ref: Float32Array, got: ArrayLike<number>): number {
  let s = 0;
  let e = 0;
  for (let i = 0; i < ref.length; i++) {
    s += ref[i]! ** 2;
    e += (ref[i]! - got[i]!) ** 2;
  }
  return 10 * Math.log10(s / Math.max(e, 1e-30));
}

/** `net`'s float outputs, and the metric every test scores candidates by: SQNR of their outputs against those. */
async function sqnrAgainstFloat(net: NetModel) {
  const ref = await outputsOf(net);
  return { ref, metric: async (c: Candidate) => sqnr(ref, await outputsOf(c.net)) };
}

describe("chooseMixedPrecision", () => {
  test("raises the clearly sensitive layer first, 4 → 8 bits → float, until the SQNR target is met; the mixed model exports and runs in plain ORT", {
    timeout: 120_000,
  }, async () => {
    const net = sensitiveNet();
    const { ref, metric } = await sqnrAgainstFloat(net);
    const r = await chooseMixedPrecision(net, data, metric, {
      preset: "w4a8",
      target: 25,
      calibrationBatches: 4,
      threads: 1,
    });
    expect(r.sensitivity[0]!.layer).toBe("fc2");
    expect(r.sensitivity[0]!.loss).toBeGreaterThan(r.sensitivity[1]!.loss + 10);
    expect(r.start).toBeLessThan(25);
    expect(r.changes[0]).toMatchObject({ layer: "fc2", from: 4, to: 8, params: 1024, costBits: 4096 });
    // then the cheap moves (fc3, fc1 to 8 bits: few bits per dB they lose alone) before the costly one: 8 bits still
    // cannot hold |w| < 1 beside 60 (step 0.47), so fc2 goes to float, which meets the target
    expect(r.changes.map((c) => `${c.layer}:${c.to}`)).toEqual(["fc2:8", "fc3:8", "fc1:8", "fc2:32"]);
    expect(r.changes[3]!.metric - r.changes[2]!.metric).toBeGreaterThan(15);
    expect(r.keepFloat).toEqual(["fc2"]);
    expect(r.meetsTarget).toBe(true);
    expect(r.metric).toBeGreaterThanOrEqual(25);
    expect(r.changes.at(-1)!.metric).toBe(r.metric);
    expect(r.changes[0]!.metric).toBeGreaterThan(r.start);

    // the chosen configuration through the export path; plain onnxruntime-node reproduces the simulation
    const { placeQuant } = await import("../../src/quant/placement.js");
    const { calibrate } = await import("../../src/quant/calibrate.js");
    const { applyQuant } = await import("../../src/quant/prepare.js");
    const placement = placeQuant(net, r.qconfig);
    expect(placement.weights.map((w) => w.layer)).toEqual(["fc1", "fc3"]);
    const q = applyQuant(net, placement, await calibrate(net, placement, data, { batches: 4, threads: 1 }));
    const ex = await exportCheckpoint(
      {
        file: "mixed",
        graph: q.eval,
        qconfig: r.qconfig,
        placement: placementTable(placement) as unknown as PlacementRow[],
      },
      { data, threads: 1 },
    );
    expect(ex.parity.passed).toBe(true);
    const session = await ort.InferenceSession.create(ex.bytes);
    const out = await session.run({
      [session.inputNames[0]!]: new ort.Tensor("float32", toFloat32(inputs), [256, 16]),
    });
    const plain = out[session.outputNames[0]!]!.data as Float32Array;
    expect(sqnr(ref, plain)).toBeGreaterThan(25);
    expect(Math.abs(sqnr(ref, plain) - r.metric)).toBeLessThan(1.5);
    await session.release();
  });

  test("when every layer alone is within the target, layers are ranked below the best single layer, not all at 0", {
    timeout: 60_000,
  }, async () => {
    const net = sensitiveNet();
    const { metric } = await sqnrAgainstFloat(net);
    // every candidate is within this target: measured against the target alone, every layer would lose 0
    const r = await chooseMixedPrecision(net, data, metric, {
      preset: "w4a8",
      target: -1e9,
      calibrationBatches: 2,
      threads: 1,
    });
    expect(r.changes).toEqual([]);
    expect(r.meetsTarget).toBe(true);
    expect(r.sensitivity.map((s) => s.layer)[0]).toBe("fc2");
    expect(r.sensitivity[0]!.loss).toBeGreaterThan(10);
    expect(r.sensitivity.at(-1)!.loss).toBe(0);
  });

  test("given sensitivities order the moves; unknown layers are refused", { timeout: 60_000 }, async () => {
    const net = sensitiveNet();
    const { metric } = await sqnrAgainstFloat(net);
    // told that fc3 is the sensitive one, fc3 goes first (cost per point: 320·4 bits / 5 pt beats fc2's 4096 / 1)
    const r = await chooseMixedPrecision(net, data, metric, {
      preset: "w4a8",
      target: 1e9,
      maxChanges: 1,
      calibrationBatches: 2,
      threads: 1,
      sensitivities: [
        { layer: "fc1", delta: -0.5 },
        { layer: "fc2", delta: -1 },
        { layer: "fc3", delta: -5 },
      ],
    });
    expect(r.changes.map((c) => [c.layer, c.to])).toEqual([["fc3", 8]]);
    expect(r.meetsTarget).toBe(false);
    await expect(
      chooseMixedPrecision(net, data, metric, {
        preset: "w4a8",
        target: 0,
        calibrationBatches: 1,
        sensitivities: [{ layer: "conv9", delta: -1 }],
      }),
    ).rejects.toThrow(MixedPrecisionError);
  });

  test("an unreachable target raises every layer it can, but the last quantized one never goes to float", {
    timeout: 60_000,
  }, async () => {
    const net = sensitiveNet();
    const { metric } = await sqnrAgainstFloat(net);
    const r = await chooseMixedPrecision(net, data, metric, {
      preset: "ort-cpu",
      target: 1e9,
      calibrationBatches: 1,
      threads: 1,
    });
    expect(r.meetsTarget).toBe(false);
    expect(r.keepFloat).toHaveLength(2);
    expect(r.changes.every((c) => c.to === 32)).toBe(true);
    const { placeQuant } = await import("../../src/quant/placement.js");
    expect(placeQuant(net, r.qconfig).weights).toHaveLength(1);
  });
});
