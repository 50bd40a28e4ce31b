/**
 * The evaluation set of a detection validation: one split of a YOLO-layout folder, every image decoded (a damaged
 * one is reported with its path before any board is touched) and made into the model's input as its head spec
 * says, with the letterbox that maps detections back to the image's pixels.
 */
import { DataError } from "../../src/data/errors.js";
import { type DetectionSet, loadImage } from "../../src/detect/dataset.js";
import { detectInput } from "../../src/detect/detect-input.js";
import type { DetectSpec } from "../../src/detect/head-spec.js";
import type { LetterboxInfo } from "../../src/detect/letterbox.js";
import { openYoloDataset, type YoloSplit } from "../../src/detect/yolo.js";

export interface DetectEvalSet {
  set: DetectionSet;
  /** Per image: the model input (one sample) and its letterbox. */
  inputs: Float32Array[];
  letterboxes: LetterboxInfo[];
  /** Input dims of one sample, batch 1 first. */
  dims: number[];
}

/** One split of a YOLO-layout set (its labels checked, images not yet decoded). */
export function openDetectSplit(data: string, split: YoloSplit = "val"): DetectionSet {
  const set = openYoloDataset(data, split);
  if (set.images.length === 0)
    throw new DataError(`the ${split} split has no images; nothing to validate`, { file: data });
  return set;
}

/** Check the set's classes against the spec's, and make its first `limit` images (0: all) inputs. */
export function loadDetectEvalSet(
  full: DetectionSet,
  spec: DetectSpec,
  limit = 0,
  file = full.name,
): DetectEvalSet {
  const images = limit > 0 ? full.images.slice(0, limit) : full.images;
  const nc = spec.classNames.length;
  if (full.classNames.length !== nc)
    throw new DataError(
      `the dataset names ${full.classNames.length} classes, the model's head has ${nc}; they must agree`,
      { file },
    );
  const inputs: Float32Array[] = [];
  const letterboxes: LetterboxInfo[] = [];
  for (const im of images) {
    const { data: x, info } = detectInput(loadImage(im), spec.input);
    inputs.push(x);
    letterboxes.push(info);
  }
  const { layout, channels, width, height } = spec.input;
  const dims = layout === "nchw" ? [1, channels, height, width] : [1, height, width, channels];
  return { set: { ...full, images }, inputs, letterboxes, dims };
}
