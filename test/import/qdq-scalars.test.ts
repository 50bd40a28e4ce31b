import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { runTorchScript, torchProblem } from "../../bench/torch/python.js";
import { loadModel } from "../../src/onnx/codec.js";
import type { Model } from "../../src/onnx/ir.js";
import { normalizeQdqScalars } from "../../src/onnx/qdq-scalars.js";
import { openSession, run, type SessionOptions } from "../../src/runtime/session.js";
import { ROOT } from "../helpers/paths.js";
import { maxAbsDiff, randomF32 } from "./helpers.js";

// made by bench/torch/export_qdq_scale1.py (PyTorch 1.13 FakeQuantize, torch.onnx.export opset 13): per-tensor Q/DQ
// around two Convs and a residual Add, every scale and zero point shaped [1]
const FIXTURE = join(ROOT, "test", "import", "fixtures", "torch-qdq-scale1.onnx");
const FUSION_ERROR = "Node (/Add) Op (QLinearAdd) [TypeInferenceError] Scale and Zero-point must be a scalar";

async function logits(
  model: Model,
  x: ReturnType<typeof randomF32>,
  opts: SessionOptions,
): Promise<Float32Array> {
  const s = await openSession(model, { threads: 1, ...opts });
  try {
    return (await run(s, { x }))["logits"]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function qdqShapes(model: Model): number[][] {
  const g = model.graph;
  return g.nodes
    .filter((n) => n.opType === "QuantizeLinear" || n.opType === "DequantizeLinear")
    .flatMap((n) => n.inputs.slice(1).map((i) => g.initializers.get(i)?.dims ?? [-1]));
}

describe("a PyTorch QDQ export with [1]-shaped scales and zero points", () => {
  test("ORT's fusion refuses it as it is; normalised, it opens and computes what the unoptimised file does", async () => {
    const file = loadModel(FIXTURE);
    expect(qdqShapes(file).some((d) => d.length === 1)).toBe(true);
    await expect(openSession(FIXTURE, { optimization: "all" })).rejects.toThrow(FUSION_ERROR);

    const fixed = loadModel(FIXTURE);
    const report = normalizeQdqScalars(fixed);
    expect(report.nodes).toHaveLength(12);
    expect(report.nodes.every((n) => n.inputs.length === 2)).toBe(true);
    expect(qdqShapes(fixed).every((d) => d.length === 0)).toBe(true);
    // the [1] tensors and the Identity that shared a zero point are gone; nothing else changed
    expect(fixed.graph.nodes.filter((n) => n.opType === "Identity")).toEqual([]);
    expect(fixed.graph.nodes.length).toBe(file.graph.nodes.length - 1);
    expect(normalizeQdqScalars(fixed).nodes).toEqual([]);

    let worst = 0;
    for (let seed = 1; seed <= 5; seed++) {
      const x = randomF32([3, 3, 8, 8], seed);
      const reference = await logits(file, x, { optimization: "disabled" });
      const same = await logits(fixed, x, { optimization: "disabled" });
      expect(maxAbsDiff(same, reference)).toBe(0);
      worst = Math.max(worst, maxAbsDiff(await logits(fixed, x, { optimization: "all" }), reference));
    }
    // ORT's fused integer kernels requantize with their own rounding: an element of the last quantized tensor may
    // land one step away from the float path's. Averaged and through the Gemm, one step everywhere moves a logit
    // by at most scale · max_row Σ|W| — the bound, read from the file
    const g = file.graph;
    const pool = g.nodes.find((n) => n.opType === "GlobalAveragePool")!;
    const dq = g.nodes.find((n) => n.outputs[0] === pool.inputs[0])!;
    const step = (g.initializers.get(dq.inputs[1]!)!.data as Float32Array)[0]!;
    const gemm = g.nodes.find((n) => n.opType === "Gemm")!;
    const w = g.initializers.get(gemm.inputs[1]!)!;
    const [rows, cols] = w.dims as [number, number];
    let rowSum = 0;
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += Math.abs((w.data as Float32Array)[r * cols + c]!);
      rowSum = Math.max(rowSum, s);
    }
    console.log(
      `qdq [1] scales: max |Δ| fused (level 'all', normalised) vs the file unoptimised: ${worst} (one-step bound ${step * rowSum})`,
    );
    expect(worst).toBeLessThanOrEqual(step * rowSum);
  });

  test.skipIf(torchProblem() !== null)(
    "the bench script exports the same structure afresh",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "qat-qdq-"));
      try {
        const out = join(dir, "qdq.onnx");
        runTorchScript("export_qdq_scale1.py", [out], undefined, 120_000);
        const fresh = loadModel(out);
        const fixture = loadModel(FIXTURE);
        expect(fresh.opsets).toEqual({ "": 13 });
        expect(fresh.graph.nodes.map((n) => n.opType)).toEqual(fixture.graph.nodes.map((n) => n.opType));
        expect(qdqShapes(fresh)).toEqual(qdqShapes(fixture));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
