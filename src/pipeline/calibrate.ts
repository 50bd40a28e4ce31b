/**
 * Post-training quantization of a trained run: calibrate every quantization point of a qconfig with an observer,
 * evaluate the float and the fake-quantized model, and write the calibrated model as a run folder (model.onnx with
 * `<tensor>.scale`/`.zero_point` initializers and Q/DQ pairs; checkpoint.onnx with the placement table), so
 * `qat train --qat --init <folder>` starts from it and `qat export` exports it.
 */
import { join } from "node:path";
import type { Graph } from "../onnx/ir.js";
import { calibrate } from "../quant/calibrate.js";
import type { ObserverKind } from "../quant/observer.js";
import { placementTable, placeQuant } from "../quant/placement.js";
import { applyQuant } from "../quant/prepare.js";
import { qconfigFrom } from "../quant/qconfig.js";
import { evaluateNet } from "../train/evaluate.js";
import { RunFolder } from "../train/run-folder.js";
import { openFloatRun } from "./float-run.js";

export interface CalibrateRunOptions {
  /** The trained run folder (float, zoo or imported model). */
  run: string;
  /** qconfig preset (default ort-cpu). */
  preset?: string;
  /** Activation observer (default: the preset's). */
  observer?: ObserverKind;
  /** Calibration batches of 64 training samples (default 32). */
  batches?: number;
  /** Layers left in float. */
  keepFloat?: string[];
  /** Per-layer weight bits, e.g. { conv1: 8, fc: 4 }. */
  weightBits?: Record<string, number>;
  /** Folder searched first for the dataset (default: the run's). */
  dataDir?: string;
  /** Evaluate on at most this many test samples (0: all). */
  evalLimit?: number;
  /** ORT intra-op threads (0 or absent: all cores). */
  threads?: number;
  /** Where the calibrated run goes (default <run>/calibrated-<preset>). */
  out?: string;
}

export interface CalibrateRunResult {
  run: string;
  out: string;
  /** The calibrated model.onnx. */
  model: string;
  preset: string;
  observer: ObserverKind | "preset";
  float_accuracy: number;
  ptq_accuracy: number;
  /** Quantization points (weights and activations). */
  points: number;
}

/** Calibrate a trained run post-training, evaluate it against float, and write the calibrated run folder. */
export async function calibrateRun(opts: CalibrateRunOptions): Promise<CalibrateRunResult> {
  const preset = opts.preset ?? "ort-cpu";
  const threads = opts.threads || undefined;
  const fr = await openFloatRun(opts.run, { dataDir: opts.dataDir });
  const qconfig = qconfigFrom(preset, { keepFloat: opts.keepFloat ?? [], weightBits: opts.weightBits ?? {} });
  const placement = placeQuant(fr.net, qconfig);
  const qparams = await calibrate(fr.net, placement, fr.train, {
    batches: opts.batches ?? 32,
    batchSize: 64,
    seed: fr.config.seed,
    threads,
    observer: opts.observer,
  });
  const q = applyQuant(fr.net, placement, qparams);
  const evalOpts = { batchSize: 256, limit: opts.evalLimit ?? 0, threads };
  const floatAccuracy = (await evaluateNet(fr.net, fr.test, evalOpts)).accuracy;
  const ptqAccuracy = (await evaluateNet(q, fr.test, evalOpts)).accuracy;
  const out = new RunFolder(opts.out ?? join(opts.run, `calibrated-${preset}`));
  const table = placementTable(placement);
  writeCalibratedRun(out, q.eval, {
    calibrated_from: opts.run,
    quant: { settings: { preset, observer: opts.observer ?? null }, qconfig, placement: table },
  });
  return {
    run: opts.run,
    out: out.dir,
    model: out.path("model"),
    preset,
    observer: opts.observer ?? "preset",
    float_accuracy: floatAccuracy,
    ptq_accuracy: ptqAccuracy,
    points: table.length,
  };
}

/** Write a calibrated model as a run folder: model.onnx, and checkpoint.onnx carrying `meta` (quant, source run). */
export function writeCalibratedRun(out: RunFolder, graph: Graph, meta: Record<string, unknown>): void {
  const unlock = out.lock("qat calibrate");
  try {
    out.writeModel(graph);
    out.writeCheckpoint({ graph, state: new Map(), meta });
  } finally {
    unlock();
  }
}
