/**
 * The fake-quant simulation of an exported model: the QAT checkpoint it was exported from (recorded in the model's
 * `qat.export` metadata as source.checkpoint / source.run, or given by the user), read with the exporter's own
 * `loadQatSource` — its eval graph is already lowered to QuantizeLinear → DequantizeLinear, and is run as the parity
 * check runs it (ORT optimisation "basic", so the Q/DQ pairs stay float instead of fusing into integer kernels).
 */
import { existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { ExportError } from "../src/export/errors.js";
import { EXPORT_META_KEY } from "../src/export/export.js";
import { loadQatSource } from "../src/export/source.js";
import { modelOf } from "../src/onnx/codec.js";
import type { Model } from "../src/onnx/ir.js";
import { WORKING_OPSET } from "../src/onnx/opset/working.js";

export interface Simulation {
  /** The fake-quant eval graph as a model (Q/DQ in float). */
  model: Model;
  /** The checkpoint file it came from. */
  source: string;
  /** Training step of the checkpoint. */
  step?: number;
  /** Something to know about it (e.g. a checkpoint given by hand that is not the one the model was exported from). */
  note?: string;
}

/** A simulation, or why there is none (said in the report). */
export type SimulationRequest = Simulation | { unavailable: string };

interface ExportMeta {
  source?: { checkpoint?: string | null; run?: string | null; step?: number | null };
}

/** The `qat.export` metadata of a model, or undefined. */
export function exportMetadata(model: Model): ExportMeta | undefined {
  const raw = model.metadata[EXPORT_META_KEY];
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as ExportMeta;
  } catch {
    return undefined;
  }
}

/** Paths a recorded path may be at: as recorded (relative to where export ran), and beside the model file. */
function candidates(recorded: string | null | undefined, modelPath?: string): string[] {
  if (!recorded) return [];
  if (isAbsolute(recorded)) return [recorded];
  const out = [resolve(recorded)];
  if (modelPath) out.push(resolve(dirname(modelPath), recorded));
  return out;
}

function simulationOf(path: string): Simulation {
  const src = loadQatSource(path);
  return { model: modelOf(src.graph, { "": WORKING_OPSET }), source: src.file, step: src.step };
}

/** Check that the simulation reads the model's input and gives its first output; undefined when it does. */
function mismatch(model: Model, sim: Model): string | undefined {
  const inputOf = (m: Model) => m.graph.inputs.find((v) => !m.graph.initializers.has(v.name))?.name;
  const input = inputOf(model);
  if (inputOf(sim) !== input) return `its input is '${inputOf(sim)}', the model's is '${input}'`;
  const out = model.graph.outputs[0]?.name;
  if (!sim.graph.outputs.some((o) => o.name === out)) return `it has no output '${out}' as the model has`;
  return undefined;
}

/**
 * Find the simulation of `model`: `explicit` (a QAT run folder or checkpoint.onnx) when given — a bad one is an
 * ExportError naming the file (exit 2) — else the checkpoint its export metadata records, when it is still there
 * and still at the step the model was exported from. Otherwise says why not.
 */
export function resolveSimulation(
  model: Model,
  opts: { modelPath?: string; explicit?: string } = {},
): SimulationRequest {
  const meta = exportMetadata(model);
  if (opts.explicit) {
    const sim = simulationOf(opts.explicit);
    const bad = mismatch(model, sim.model);
    if (bad) throw new ExportError(`not the simulation of this model: ${bad}`, { file: sim.source });
    const recorded = meta?.source?.step;
    if (typeof recorded === "number" && sim.step !== undefined && sim.step !== recorded) {
      sim.note = `the checkpoint is at step ${sim.step}; the model was exported from step ${recorded}`;
    }
    return sim;
  }
  if (!meta) {
    return {
      unavailable:
        "the model has no qat.export metadata (it was not written by qat export); give --simulation <QAT run or checkpoint>",
    };
  }
  const recorded = meta.source?.checkpoint ?? meta.source?.run ?? null;
  const paths = [
    ...candidates(meta.source?.checkpoint, opts.modelPath),
    ...candidates(meta.source?.run, opts.modelPath),
  ];
  const found = paths.find((p) => existsSync(p));
  if (!found) {
    return {
      unavailable: recorded
        ? `the QAT checkpoint the model was exported from (${recorded}) is not readable here; give --simulation <QAT run or checkpoint>`
        : "the model's export metadata records no QAT checkpoint; give --simulation <QAT run or checkpoint>",
    };
  }
  let sim: Simulation;
  try {
    sim = simulationOf(found);
  } catch (e) {
    return { unavailable: `${found} cannot be read as the QAT checkpoint: ${(e as Error).message}` };
  }
  const step = meta.source?.step;
  if (typeof step === "number" && sim.step !== undefined && sim.step !== step) {
    return {
      unavailable: `${sim.source} is at step ${sim.step}, but the model was exported from step ${step} (trained further since); give --simulation to use it anyway`,
    };
  }
  const bad = mismatch(model, sim.model);
  if (bad) return { unavailable: `${sim.source} is not this model's simulation: ${bad}` };
  return sim;
}
