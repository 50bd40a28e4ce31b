/**
 * mAP of a CenterNet-style detector (tiny-det) on a decoded detection split: each batch through the model, decoded
 * (src/detect/center-decode.ts), detections mapped back through each image's letterbox to its own pixels and scored
 * by COCO mAP (src/detect/map.ts) against the ground truth as read from the files. The same path scores the
 * training run's eval graph, the fake-quant simulation and an exported int8 .onnx.
 */
import { decodeCenterNet } from "../detect/center-decode.js";
import { fromLetterbox } from "../detect/letterbox.js";
import { type EvalImage, evaluateMap, type MapResult } from "../detect/map.js";
import type { DetectionTensors } from "../detect/tensors.js";
import type { Model } from "../onnx/ir.js";
import type { Tensor } from "../onnx/tensor.js";
import { openSession, type SessionOptions, toOrt } from "../runtime/session.js";
import type { LogitsOf } from "../train/evaluate.js";
import { sampleInput } from "../train/evaluate.js";

export interface DetectEvalOptions {
  stride: number;
  batchSize?: number;
  /** At most this many images (0: all). */
  limit?: number;
}

/** mAP50-95, mAP50 and per-class AP of the detector behind `outputOf` on the split. */
export async function detectionMap(
  outputOf: LogitsOf,
  t: DetectionTensors,
  opts: DetectEvalOptions,
): Promise<MapResult> {
  const [C, H, W] = t.inputShape;
  const size = C * H * W;
  const n = opts.limit ? Math.min(opts.limit, t.objects.length) : t.objects.length;
  const batch = opts.batchSize ?? 64;
  const images: EvalImage[] = [];
  for (let start = 0; start < n; start += batch) {
    const m = Math.min(batch, n - start);
    const x: Tensor = {
      dtype: "float32",
      dims: [m, C, H, W],
      data: Float32Array.from(t.pixels.subarray(start * size, (start + m) * size)),
    };
    const out = await outputOf(x);
    const dets = decodeCenterNet(out.data as Float32Array, out.dims, { stride: opts.stride });
    dets.forEach((d, k) => {
      const i = start + k;
      const lb = t.letterbox[i]!;
      images.push({
        gt: t.set.images[i]!.objects,
        dt: d.map((e) => ({ ...e, box: fromLetterbox(e.box, lb) })),
      });
    });
  }
  return evaluateMap(images, { numClasses: t.set.classNames.length });
}

/** mAP of a detector model file (or model in memory), e.g. an exported int8 .onnx, in its own ORT session. */
export async function detectionMapOfModel(
  model: Model | string,
  t: DetectionTensors,
  opts: DetectEvalOptions & SessionOptions,
): Promise<MapResult> {
  const session = await openSession(model, opts);
  try {
    const input = typeof model === "string" ? session.inputNames[0]! : sampleInput(model).name;
    const output = session.outputNames[0]!;
    return await detectionMap(
      async (x) => (await session.run({ [input]: toOrt(x) }, [output]))[output]!,
      t,
      opts,
    );
  } finally {
    await session.release();
  }
}

/** The figures a run reports: mAP50-95, mAP50, mAP75 and AP per class (NaN-free for JSON). */
export function mapFigures(r: MapResult): {
  map: number;
  map50: number;
  map75: number;
  per_class: { cls: number; ap: number | null; ap50: number | null }[];
} {
  const num = (v: number): number | null => (Number.isFinite(v) ? v : null);
  return {
    map: r.map,
    map50: r.map50,
    map75: r.map75,
    per_class: r.perClass.map((c) => ({ cls: c.cls, ap: num(c.ap), ap50: num(c.ap50) })),
  };
}
