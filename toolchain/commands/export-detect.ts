import type { ExportFormat, ExportTarget } from "../../src/export/export.js";
import { TINY_DET_STRIDE } from "../../src/nn/tiny-det.js";
import { detectionMapOfModel, mapFigures } from "../../src/pipeline/detect-eval.js";
import { exportDetector, isDetectionSource } from "../../src/pipeline/detect-export.js";
import { calibrateDetector, isDetectionRun } from "../../src/pipeline/detect-run.js";
import { DETECT_INPUT, isDetectionData, openDetectSplit } from "../../src/pipeline/detect-trainer.js";
import type { ObserverKind } from "../../src/quant/observer.js";
import { RunFolder } from "../../src/train/run-folder.js";
import { count, positiveInt } from "../args.js";
import { CheckFailed } from "../check-failed.js";
import { layerList } from "../flags.js";
import { emit } from "../output.js";

const pct = (v: number) => (100 * v).toFixed(2);

/** `qat export` of a detection run or calibrated folder; false (nothing done) for any other source. */
export async function exportDetectorCli(
  source: string,
  f: {
    out?: string;
    format: ExportFormat;
    target: ExportTarget;
    limit: string;
    threads: string;
    json: boolean;
  },
): Promise<boolean> {
  if (!isDetectionSource(source)) return false;
  const r = await exportDetector(source, f.out!, {
    format: f.format,
    target: f.target,
    threads: count(f.threads, "--threads"),
    evalLimit: count(f.limit, "--limit"),
  });
  emit(
    f,
    `int8 ${r.out}: val mAP50-95 ${pct(r.int8.map)}, mAP50 ${pct(r.int8.map50)}; simulation mAP50-95 ` +
      `${pct(r.simulation.map)}, mAP50 ${pct(r.simulation.map50)}; box agreement ${pct(r.box_agreement.share)}% of ${r.box_agreement.compared}; ` +
      `outputs within one step ${r.parity.within_one_step === null ? "-" : pct(r.parity.within_one_step)}%\n` +
      (r.written ? `wrote ${r.out}` : `nothing written: the parity check failed`),
    r,
  );
  if (!r.written)
    throw new CheckFailed(`parity check failed, ${r.out} not written:\n  ${r.parity.failures.join("\n  ")}`);
  return true;
}

/** `qat calibrate` of a detection run; false (nothing done) for any other run. */
export async function calibrateDetectorCli(
  run: string,
  f: {
    preset: string;
    observer?: ObserverKind;
    batches: string;
    keepFloat?: string;
    evalLimit: string;
    threads: string;
    out?: string;
    json: boolean;
  },
): Promise<boolean> {
  if (!isDetectionRun(run)) return false;
  const r = await calibrateDetector({
    run,
    preset: f.preset,
    observer: f.observer,
    batches: positiveInt(f.batches, "--batches"),
    keepFloat: layerList(f.keepFloat),
    evalLimit: count(f.evalLimit, "--eval-limit"),
    threads: count(f.threads, "--threads"),
    out: f.out,
  });
  emit(
    f,
    `float val mAP50-95 ${pct(r.float.map)} (mAP50 ${pct(r.float.map50)})  PTQ ${r.preset} ${pct(r.ptq.map)} ` +
      `(mAP50 ${pct(r.ptq.map50)})\ncalibrated run: ${r.out}; export it with qat export ${r.out}`,
    r,
  );
  return true;
}

/** `qat eval <model.onnx | run> --data <YOLO folder>`: mAP on the val split; false for any other data. */
export async function evalDetectorCli(
  target: string,
  f: { data: string; limit: string; threads: string; json: boolean },
): Promise<boolean> {
  if (!isDetectionData(f.data)) return false;
  const file = new RunFolder(target).weightsFile() ?? target;
  const val = openDetectSplit(f.data, "val", DETECT_INPUT, count(f.limit, "--limit"));
  const m = await detectionMapOfModel(file, val, {
    stride: TINY_DET_STRIDE,
    threads: count(f.threads, "--threads") || undefined,
  });
  const figures = mapFigures(m);
  emit(
    f,
    `${file} on ${f.data} (val, ${val.objects.length} images): mAP50-95 ${pct(m.map)}, mAP50 ${pct(m.map50)}, mAP75 ${pct(m.map75)}\n` +
      figures.per_class
        .map(
          (c) =>
            `  class ${val.set.classNames[c.cls]}: AP ${c.ap === null ? "n/a" : pct(c.ap)}, AP50 ${c.ap50 === null ? "n/a" : pct(c.ap50)}`,
        )
        .join("\n"),
    { model: file, dataset: f.data, split: "val", images: val.objects.length, ...figures },
  );
  return true;
}
