/**
 * The detection plug-in of a quantize run: mAP50-95 (COCO) of a CenterNet-style detector (tiny-det: one output
 * [batch, classes + 4, rows, cols]) on held-out images whose ground truth the metric holds, decoded by the
 * detector's own decoder (src/detect/center-decode.ts) and mapped back through each image's letterbox — the path
 * `qat eval` scores a detector by, so stages are judged in the same mAP points. It also says how distillation
 * should compare the student to the teacher on that output: heatmap logits as sigmoids, box distances by regression.
 */
import { decodeCenterNet } from "../../detect/center-decode.js";
import { fromLetterbox } from "../../detect/letterbox.js";
import { type EvalImage, evaluateMap } from "../../detect/map.js";
import type { DetectionTensors } from "../../detect/tensors.js";
import type { OutputPart } from "../../nn/import/outputs.js";
import type { OutputSegment } from "../../quant/distill.js";
import type { DistillKind } from "../../train/distill-loss.js";
import { FidelityMeter } from "../../train/fidelity.js";
import type { MetricAccumulator, QuantMetric } from "./metric.js";
import { QuantizeError } from "./types.js";

/** Where the detector's output is and how it is decoded. */
export interface CenterNetHead {
  output: string;
  classes: number;
  rows: number;
  cols: number;
  /** Input pixels per output cell. */
  stride: number;
}

/** How distillation compares the student's flat output to the teacher's, segment by segment. */
export interface DistillPlan {
  outputs: OutputSegment[];
  kinds: Record<string, DistillKind>;
}

/**
 * The model's CenterNet output for `classes` classes at input H×W: the one output [batch, classes + 4, rows, cols]
 * with H/rows = W/cols a whole stride. Anything else is a QuantizeError naming the outputs the model has.
 */
export function centerNetHead(
  outputs: readonly OutputPart[] | null,
  classes: number,
  height: number,
  width: number,
): CenterNetHead {
  const fits = (o: OutputPart) => {
    const [, c, r, k] = o.shape;
    return (
      o.shape.length === 4 &&
      c === classes + 4 &&
      typeof r === "number" &&
      typeof k === "number" &&
      height % r === 0 &&
      width % k === 0 &&
      height / r === width / k
    );
  };
  const found = (outputs ?? []).filter(fits);
  if (found.length !== 1) {
    const have = (outputs ?? []).map((o) => `'${o.name}' [${o.shape.join(", ")}]`).join(", ") || "none";
    throw new QuantizeError(
      `detection data with ${classes} classes needs a detector with one CenterNet output [batch, ${classes + 4}, rows, cols] ` +
        `(heatmap logits per class, then 4 box distances; rows and cols dividing the ${height}x${width} input), ` +
        `as tiny-det has; the model's outputs: ${have}. Give --labels none to measure fidelity to the float model instead`,
    );
  }
  const o = found[0]!;
  const rows = o.shape[2] as number;
  return { output: o.name, classes, rows, cols: o.shape[3] as number, stride: height / rows };
}

/** Heatmap logits against the teacher's as sigmoids, box distances (and any other output) by regression. */
export function centerNetDistillPlan(outputs: readonly OutputPart[], head: CenterNetHead): DistillPlan {
  const segs: OutputSegment[] = [];
  const kinds: Record<string, DistillKind> = {};
  const heat = head.classes * head.rows * head.cols;
  for (const o of outputs) {
    if (o.name !== head.output) {
      segs.push({ name: o.name, offset: o.offset, size: o.size });
      kinds[o.name] = "regression";
      continue;
    }
    const [h, b] = [`${o.name} heatmap`, `${o.name} boxes`];
    segs.push(
      { name: h, offset: o.offset, size: heat },
      { name: b, offset: o.offset + heat, size: o.size - heat },
    );
    kinds[h] = "sigmoid";
    kinds[b] = "regression";
  }
  return { outputs: segs, kinds };
}

/**
 * mAP50-95 in points (100 × COCO mAP) of the held-out images `val` (the batch's labels are indices into it), with
 * mAP50, mAP75, AP per class and each output's fidelity to the float model in the details.
 */
export function detectionMetric(val: DetectionTensors, head: CenterNetHead): QuantMetric {
  const numClasses = val.set.classNames.length;
  return {
    name: "mAP50-95",
    unit: "%",
    labelled: true,
    start(): MetricAccumulator {
      const images: EvalImage[] = [];
      const meter = new FidelityMeter();
      return {
        add(b) {
          const out = b.candidate[head.output];
          if (!out) throw new Error(`mAP50-95: the model gave no output '${head.output}'`);
          const per = out.data.length / out.dims[0]!;
          const dets = decodeCenterNet(out.data.subarray(0, b.take * per), [b.take, ...out.dims.slice(1)], {
            stride: head.stride,
          });
          dets.forEach((d, k) => {
            const i = Number(b.labels[k]);
            images.push({
              gt: val.set.images[i]!.objects,
              dt: d.map((e) => ({ ...e, box: fromLetterbox(e.box, val.letterbox[i]!) })),
            });
          });
          meter.add(b.reference, b.candidate);
        },
        result() {
          const m = evaluateMap(images, { numClasses });
          const pt = (v: number) => (Number.isFinite(v) ? 100 * v : null);
          return {
            value: 100 * m.map,
            details: {
              images: images.length,
              map50: pt(m.map50),
              map75: pt(m.map75),
              perClass: m.perClass.map((c) => ({ cls: c.cls, ap: pt(c.ap), ap50: pt(c.ap50) })),
              decoder: `CenterNet peaks, stride ${head.stride}`,
              outputs: meter.result(),
            },
          };
        },
      };
    },
  };
}
