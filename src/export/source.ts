import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { OnnxError } from "../onnx/errors.js";
import type { Graph } from "../onnx/ir.js";
import { toFloat32 } from "../onnx/tensor.js";
import type { QConfig } from "../quant/qconfig.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import { RUN_FILES, RunFolder } from "../train/run-folder.js";
import { ExportError } from "./errors.js";

/** One row of the placement table a QAT checkpoint records (src/quant/placement.ts `placementTable`). */
export interface PlacementRow {
  kind: "weight" | "activation";
  layer: string;
  /** The quantized tensor: a weight initializer or an activation value of the float model. */
  tensor: string;
  node?: string;
  op?: string;
  scale: string;
  zero_point: string;
  axis: number;
  bits: number;
  qmin: number;
  qmax: number;
  dtype: "uint8" | "int8" | "int32";
}

/** A QAT checkpoint as export reads it. */
export interface QatSource {
  /** The checkpoint file. */
  file: string;
  /** The run folder, when one was given (or the checkpoint sits in one). */
  runDir?: string;
  /** The fake-quant eval graph with the trained values; training state removed. */
  graph: Graph;
  qconfig: QConfig;
  placement: PlacementRow[];
  /** Training step the checkpoint was written at. */
  step?: number;
  /** The run's dataset and data folder (for the parity check's default data). */
  dataset?: string;
  dataDir?: string;
  /** Host test accuracy of the simulation from the run's summary.json, when there is one. */
  summaryAccuracy?: number;
}

/**
 * Read a run folder or a checkpoint.onnx written by `qat train --qat`. Anything else fails with an ExportError that
 * says what the file is and what to do: a plain ONNX model, a float checkpoint, a checkpoint whose quantization
 * parameters (scale, zero point) are missing or not finite.
 */
export function loadQatSource(path: string): QatSource {
  if (!existsSync(path)) throw new ExportError("no such file or run folder", { file: path });
  const isDir = statSync(path).isDirectory();
  const file = isDir ? new RunFolder(path).path("checkpoint") : path;
  if (isDir && !existsSync(file)) {
    throw new ExportError(`the run folder has no ${RUN_FILES.checkpoint}: is it a run folder of qat train?`, {
      file: path,
    });
  }
  let ck: ReturnType<typeof loadCheckpoint>;
  try {
    ck = loadCheckpoint(file);
  } catch (e) {
    if (e instanceof OnnxError) {
      throw new ExportError(
        `${e.message.replace(`${file}: `, "")}. qat export takes a QAT checkpoint: a run folder of 'qat train --qat' or its ${RUN_FILES.checkpoint}`,
        { file },
      );
    }
    throw e;
  }
  const meta = ck.meta as {
    position?: { step?: number };
    config?: { data?: string; dataDir?: string };
    /** `qat calibrate` writes the float run it started from instead of a config. */
    calibrated_from?: string;
    quant?: { qconfig?: QConfig; placement?: PlacementRow[] };
  };
  if (!meta.quant?.placement || !meta.quant.qconfig) {
    throw new ExportError(
      "a float checkpoint: it records no quantization (no placement table in its qat.checkpoint metadata). " +
        "Train it with 'qat train --qat <preset> --init <this run>' first",
      { file },
    );
  }
  const g = ck.graph;
  const placement = meta.quant.placement;
  for (const row of placement) {
    for (const [what, name] of [
      ["scale", row.scale],
      ["zero point", row.zero_point],
    ] as const) {
      const t = g.initializers.get(name);
      if (!t) {
        throw new ExportError(
          `the ${what} '${name}' of ${row.kind} '${row.tensor}' (layer '${row.layer}') is missing from the checkpoint; ` +
            "it is not a complete QAT checkpoint (re-run the QAT training or the calibration)",
          { file, tensor: name },
        );
      }
      if (what === "scale") {
        const s = toFloat32(t);
        const bad = s.findIndex((v) => !Number.isFinite(v) || v === 0);
        if (bad >= 0) {
          throw new ExportError(
            `the scale of ${row.kind} '${row.tensor}' is ${s[bad]} at index ${bad}: not usable`,
            { file, tensor: name },
          );
        }
      }
    }
  }
  const runDir = isDir ? path : new RunFolder(dirname(file)).has("config") ? dirname(file) : undefined;
  // the summary and the config are extras (the accuracy to compare, the default data): a damaged one is skipped
  let summaryAccuracy: number | undefined;
  try {
    summaryAccuracy = runDir
      ? new RunFolder(runDir).readSummary<{ test_accuracy?: number }>()?.test_accuracy
      : undefined;
  } catch {
    summaryAccuracy = undefined;
  }
  let config = meta.config;
  const from = meta.calibrated_from;
  if (!config && from && new RunFolder(from).has("config")) {
    try {
      config = new RunFolder(from).readConfig() as { data?: string; dataDir?: string };
    } catch {
      config = undefined;
    }
  }
  return {
    file,
    runDir,
    graph: g,
    qconfig: meta.quant.qconfig,
    placement,
    step: meta.position?.step,
    dataset: config?.data,
    dataDir: config?.dataDir,
    summaryAccuracy,
  };
}
