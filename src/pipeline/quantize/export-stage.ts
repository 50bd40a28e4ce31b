/**
 * Stage 6: export the kept candidate with the existing QDQ exporter and its parity check, and make the file a
 * drop-in replacement for the float model the user ships: same input and output names, and the shapes the original
 * declares (the importer made the batch dynamic for training; a model fixed at batch 1 is fixed at 1 again).
 * Nothing is written here: the run writes the bytes once every stage is done.
 */
import type { Dataset } from "../../data/dataset.js";
import { exportCheckpoint } from "../../export/export.js";
import type { ParityThresholds } from "../../export/parity.js";
import type { QatSource } from "../../export/source.js";
import { encodeModel, loadModel } from "../../onnx/codec.js";
import type { Model } from "../../onnx/ir.js";
import { placementTable } from "../../quant/placement.js";
import type { Candidate } from "./candidate.js";
import { QuantizeError } from "./types.js";

export interface ExportedModel {
  bytes: Uint8Array;
  /** The checkpoint `qat verify` / `qat export` take (the fake-quant model and its placement table). */
  source: QatSource;
  details: Record<string, unknown>;
  changed: string;
}

export async function exportCandidate(
  c: Candidate,
  original: string,
  checkpoint: string,
  data: Dataset,
  opts: { preset: string; threads?: number },
): Promise<ExportedModel> {
  const source: QatSource = {
    file: checkpoint,
    graph: c.quant.eval,
    qconfig: c.qconfig,
    placement: placementTable(c.placement) as unknown as QatSource["placement"],
  };
  const target = opts.preset === "tensorrt" ? "tensorrt" : "ort-cpu";
  const originalModel = loadModel(original);
  const r = await exportCheckpoint(source, {
    data,
    target,
    threads: opts.threads,
    limit: 256,
    thresholds: PARITY_THRESHOLDS,
  });
  if (!r.parity.passed) {
    throw new QuantizeError(
      `the exported int8 model does not match its simulation (parity check): ${r.parity.failures.join("; ")}. ` +
        "Nothing was written",
      1,
    );
  }
  const declared = restoreInterface(r.model, originalModel);
  return {
    bytes: declared ? encodeModel(r.model) : r.bytes,
    source,
    changed: `QDQ export (${target}, opset ${r.opset}), parity passed on ${r.parity.samples} held-out samples${declared ? `; ${declared}` : ""}`,
    details: {
      parity: {
        samples: r.parity.samples,
        agreement: r.parity.agreement,
        simulationAccuracy: r.parity.simulationAccuracy,
        exportAccuracy: r.parity.exportAccuracy,
        outputs: r.parity.outputs.map((o) => ({
          name: o.name,
          maxAbs: o.maxAbs,
          withinOneStep: o.withinOneStep,
          sqnrDb: o.sqnrDb,
        })),
      },
      warnings: r.warnings,
      sizes: r.sizes,
      int4Weights: r.int4Weights,
    },
  };
}

/** Least SQNR (dB) of the exported outputs against the simulation's when fewer than 99% are within one step. */
export const PARITY_SQNR_DB = 20;

/**
 * The parity thresholds of an imported model (top-1 agreement is asked by checkParity itself only of a
 * [batch, classes] first output): values within one step, or else a difference at least PARITY_SQNR_DB below the signal: integer kernels and the float32 simulation round a value
 * that sits on a tie differently, and deep networks spread such flips. Measured on BlazeFace, min-max PTQ without
 * CLE: 88–96% of output values within one step on 32 held-out crops, yet 27–41 dB against the simulation; on random
 * inputs the simulation departs more from itself when its input moves by ±1e-5 (15–26 dB) than the export from it
 * (29–46 dB). One layer's weight scales doubled in the export: the worst output at −10 to 7 dB (three layers).
 */
export const PARITY_THRESHOLDS: Partial<ParityThresholds> = { sqnrDb: PARITY_SQNR_DB };

/**
 * Give the exported model the original's input and output declarations (names are kept by the importer; shapes
 * lost their fixed batch). Fails if a name is missing, since then it would not be a drop-in replacement. Returns
 * what changed, or "" when nothing had to.
 */
export function restoreInterface(exported: Model, original: Model): string {
  const g = exported.graph;
  const og = original.graph;
  const originalInputs = og.inputs.filter((v) => !og.initializers.has(v.name));
  const changed: string[] = [];
  for (const [mine, theirs, what] of [
    [g.inputs.filter((v) => !g.initializers.has(v.name)), originalInputs, "input"],
    [g.outputs, og.outputs, "output"],
  ] as const) {
    const names = (l: readonly { name: string }[]) => l.map((v) => v.name).join(", ");
    if (names(mine) !== names(theirs)) {
      throw new QuantizeError(
        `the exported model's ${what}s (${names(mine)}) differ from the original's (${names(theirs)}); not a drop-in replacement`,
        1,
      );
    }
    for (let i = 0; i < mine.length; i++) {
      const shape = theirs[i]!.shape;
      if (shape && (mine[i]!.shape ?? []).join(",") !== shape.join(",")) {
        changed.push(`${what} '${mine[i]!.name}' declared [${shape}] as in the original`);
        mine[i]!.shape = [...shape];
      }
    }
  }
  return changed.join("; ");
}
