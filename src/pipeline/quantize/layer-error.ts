/**
 * Per-layer error of the final model: each quantized layer's output (after its folded BN) in the fake-quantized
 * model against the same value in the float model, as SQNR in dB on held-out samples. Errors accumulate along the
 * network, so a sharp fall from one layer to the next points at the layer that hurts.
 */
import type { Dataset } from "../../data/dataset.js";
import type { NetModel } from "../../nn/model.js";
import { modelOf } from "../../onnx/codec.js";
import { cloneGraph, type Graph } from "../../onnx/ir.js";
import type { Placement } from "../../quant/placement.js";
import { openSession, run } from "../../runtime/session.js";
import { evalBatches } from "../../train/evaluate.js";
import { Sqnr } from "../../train/fidelity.js";
import type { LayerError } from "./types.js";

export async function layerErrors(
  float: NetModel,
  quant: NetModel,
  placement: Placement,
  heldOut: Dataset,
  opts: { threads?: number; samples?: number } = {},
): Promise<LayerError[]> {
  const layers = placement.weights.map((w) => ({
    layer: w.layer,
    bits: w.cfg.bits,
    value: w.bn ? w.bn.output : float.eval.nodes.find((n) => n.name === w.node)?.outputs[0],
  }));
  const values = layers
    .map((l) => l.value)
    .filter((v): v is string => !!v && quant.eval.nodes.some((n) => n.outputs.includes(v)));
  if (!values.length) return [];
  const tap = (g: Graph) => {
    const c = cloneGraph(g);
    const have = new Set(c.outputs.map((o) => o.name));
    for (const v of values) if (!have.has(v)) c.outputs.push({ name: v, dtype: "float32" });
    return modelOf(c);
  };
  const fs = await openSession(tap(float.eval), { threads: opts.threads, optimization: "basic" });
  const qs = await openSession(tap(quant.eval), { threads: opts.threads, optimization: "basic" });
  const meters = new Map(values.map((v) => [v, new Sqnr()]));
  try {
    for await (const b of evalBatches(heldOut, { batchSize: 64, limit: opts.samples ?? 256 })) {
      const feeds = { [float.input]: b.x };
      const [f, q] = [await run(fs, feeds, values), await run(qs, feeds, values)];
      for (const v of values) {
        const fv = f[v]!;
        meters
          .get(v)!
          .add(
            { data: fv.data as Float32Array, dims: fv.dims },
            { data: q[v]!.data as Float32Array, dims: q[v]!.dims },
          );
      }
    }
  } finally {
    await fs.release();
    await qs.release();
  }
  return layers
    .filter((l) => l.value && meters.has(l.value))
    .map((l) => ({ layer: l.layer, sqnrDb: meters.get(l.value!)!.result().sqnrDb, weightBits: l.bits }));
}
