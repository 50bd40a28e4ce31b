/**
 * A YOLO-layout detection folder (data.yaml, images/, labels/) as a quantize run's data: the first train images,
 * unlabelled, to calibrate and distill on; the first val images held out, each sample labelled with its index so
 * the detection metric finds its ground truth. Images are letterboxed to the model's input as `qat train` and
 * `qat eval` do, then preprocessed by the user's flags like any other data.
 */
import type { Dataset } from "../../data/dataset.js";
import { loadDetectionTensors, tensorsAsDataset } from "../../detect/tensors.js";
import { openYoloDataset } from "../../detect/yolo.js";
import type { OutputPart } from "../../nn/import/outputs.js";
import { imageDims, type ModelInput, PreprocessedDataset, type QuantizeData } from "./data.js";
import { centerNetDistillPlan, centerNetHead, detectionMetric } from "./detect-metric.js";
import { type Preprocess, QuantizeError } from "./types.js";

export async function openDetectionData(
  root: string,
  input: ModelInput,
  outputs: readonly OutputPart[] | null,
  opts: { labels?: string; preprocess?: Preprocess; evalSamples: number; calibrationSamples: number },
): Promise<QuantizeData> {
  const pre = opts.preprocess ?? {};
  const labels = opts.labels ?? "auto";
  if (labels !== "auto" && labels !== "none")
    throw new QuantizeError(
      `--labels ${labels}: a detection folder (${root}) brings its own labels; give auto (mAP) or none (fidelity)`,
    );
  const { channels, height, width } = imageDims(input, pre);
  const split = (name: "train" | "val") => {
    const set = openYoloDataset(root, name);
    if (set.images.length === 0) throw new QuantizeError(`${root}: the ${name} split has no images`);
    return set;
  };
  const [trainSet, valSet] = [split("train"), split("val")];
  const labelled = labels === "auto";
  // the head is checked before any image is decoded: a wrong model fails at once
  const head = labelled ? centerNetHead(outputs, valSet.classNames.length, height, width) : undefined;
  const shape = [channels, height, width];
  const train = loadDetectionTensors(trainSet, shape, opts.calibrationSamples);
  const val = loadDetectionTensors(valSet, shape, opts.evalSamples);
  const heldBase = tensorsAsDataset(val);
  // a held-out sample's label is its index in `val`: the metric looks its boxes and letterbox up there
  const indexed: Dataset = {
    ...heldBase,
    fill: (items, x, y, ctx) => {
      heldBase.fill(items, x, y, ctx);
      for (let k = 0; k < items.length; k++) y[k] = BigInt(items[k]!);
    },
  };
  const wrap = (ds: Dataset, l: boolean) => new PreprocessedDataset(ds, pre, input.layout, l);
  return {
    calibration: wrap(tensorsAsDataset(train), false),
    heldOut: wrap(indexed, labelled),
    labelled,
    describe:
      `${root}: ${train.objects.length} train images for calibration and distillation (boxes not used), ` +
      `${val.objects.length} val images held out` +
      (head ? `, scored by COCO mAP of the CenterNet decoder (stride ${head.stride})` : ", labels not used"),
    metric: head ? detectionMetric(val, head) : undefined,
    distill: head && outputs ? centerNetDistillPlan(outputs, head) : undefined,
  };
}
