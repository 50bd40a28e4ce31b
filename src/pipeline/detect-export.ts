/**
 * int8 export of a detector (a QAT run of tiny-det, or its `qat calibrate` folder), with parity measured in
 * detection terms: the exported .onnx and the fake-quant simulation are each scored by COCO mAP on the val split
 * in their own ORT sessions, and their detections compared box by box.
 *
 * The generic parity check still runs on every output value (share within one quantization step); its top-1
 * agreement, the arg-max over a whole [classes + 4, rows, cols] map, says nothing about detections and is not
 * required here — mAP and box agreement replace it.
 */
import { existsSync, statSync } from "node:fs";
import { iou } from "../detect/boxes.js";
import { decodeCenterNet } from "../detect/center-decode.js";
import type { DetectionTensors } from "../detect/tensors.js";
import { tensorsAsDataset } from "../detect/tensors.js";
import { type ExportFormat, type ExportTarget, exportToFile } from "../export/export.js";
import { loadQatSource } from "../export/source.js";
import { modelOf } from "../onnx/codec.js";
import type { Model } from "../onnx/ir.js";
import { openSession, toOrt } from "../runtime/session.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import { RunFolder } from "../train/run-folder.js";
import { ConfigError } from "./config.js";
import { detectionMapOfModel, mapFigures } from "./detect-eval.js";
import { DETECT_INPUT, gridOf, openDetectSplit } from "./detect-trainer.js";

export interface DetectExportOptions {
  format?: ExportFormat;
  target?: ExportTarget;
  threads?: number;
  /** Score and compare on at most this many val images (0: all). */
  evalLimit?: number;
}

/** Whether a run folder or checkpoint was trained or calibrated on a detection set (its meta says task "detect"). */
export function isDetectionSource(source: string): boolean {
  const file =
    existsSync(source) && statSync(source).isDirectory() ? new RunFolder(source).path("checkpoint") : source;
  if (!existsSync(file)) return false;
  try {
    return (loadCheckpoint(file).meta as { task?: string }).task === "detect";
  } catch {
    return false; // not a checkpoint: the export reports that itself
  }
}

/** Export, then score int8 and simulation by mAP on val; writes `out` only when the value parity passed. */
export async function exportDetector(source: string, out: string, o: DetectExportOptions = {}) {
  const src = loadQatSource(source);
  if (!src.dataset)
    throw new ConfigError(`${source}: the checkpoint names no dataset to check the export on`);
  const val = openDetectSplit(src.dataset, "val", DETECT_INPUT, o.evalLimit ?? 0);
  const grid = gridOf(val.set, DETECT_INPUT);
  const r = await exportToFile(source, out, {
    format: o.format,
    target: o.target,
    threads: o.threads,
    data: tensorsAsDataset(val),
    limit: o.evalLimit,
  });
  const opts = { stride: grid.stride, threads: o.threads || undefined };
  const int8 = await detectionMapOfModel(r.model, val, opts);
  const sim = await detectionMapOfModel(modelOf(src.graph), val, { ...opts, optimization: "basic" });
  const agreement = await boxAgreement(r.model, modelOf(src.graph), val, grid.stride, o.threads);
  return {
    out,
    written: r.written,
    parity: {
      passed: r.parity.passed,
      within_one_step: r.parity.outputs[0]?.withinOneStep ?? null,
      max_abs: r.parity.outputs[0]?.maxAbs ?? null,
      failures: r.parity.failures,
    },
    int8: mapFigures(int8),
    simulation: mapFigures(sim),
    box_agreement: agreement,
    sizes: r.sizes,
  };
}

/**
 * Share of the simulation's confident detections (score ≥ 0.25) that the int8 model also makes: same class, IoU ≥
 * 0.9 (the board validation's definition).
 */
async function boxAgreement(
  int8: Model,
  sim: Model,
  t: DetectionTensors,
  stride: number,
  threads?: number,
): Promise<{ share: number; compared: number }> {
  const a = await openSession(int8, { threads: threads || undefined });
  const b = await openSession(sim, { threads: threads || undefined, optimization: "basic" });
  const [C, H, W] = t.inputShape;
  const size = C * H * W;
  let matched = 0;
  let total = 0;
  try {
    for (let start = 0; start < t.objects.length; start += 64) {
      const m = Math.min(64, t.objects.length - start);
      const x = toOrt({
        dtype: "float32",
        dims: [m, C, H, W],
        data: Float32Array.from(t.pixels.subarray(start * size, (start + m) * size)),
      });
      const decode = async (s: typeof a) => {
        const o = (await s.run({ [s.inputNames[0]!]: x }))[s.outputNames[0]!]!;
        return decodeCenterNet(o.data as Float32Array, o.dims, { stride, scoreThreshold: 0.25 });
      };
      const [da, db] = [await decode(a), await decode(b)];
      db.forEach((dets, k) => {
        for (const d of dets) {
          total++;
          if (da[k]!.some((e) => e.cls === d.cls && iou(e.box, d.box) >= 0.9)) matched++;
        }
      });
    }
  } finally {
    await a.release();
    await b.release();
  }
  return { share: total ? matched / total : 1, compared: total };
}
