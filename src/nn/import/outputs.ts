/**
 * Training on every output of a model that is not a classifier (a detector's scores and box regressors, keypoints,
 * masks). The training step reads one [batch, n] value; the training graph gets it as every output flattened per
 * sample ([batch, …] → [batch, size]) and concatenated in graph-output order. A loss that wants each output on its
 * own (KL on scores, MSE on boxes) slices it back with the offsets returned here. The evaluation graph is left as
 * the file has it: same output names and shapes, so the model stays a drop-in replacement.
 */
import type { Graph } from "../../onnx/ir.js";
import { inferShapes } from "../../onnx/shapes.js";
import { ImportError } from "./errors.js";

export interface OutputPart {
  /** The output's name in the file (and in the evaluation graph). */
  name: string;
  /** Its shape, batch first. */
  shape: (number | string)[];
  /** Where its per-sample values start in the flat value, and how many there are. */
  offset: number;
  size: number;
}

export interface FlatOutputs {
  /** The training graph's [batch, size] value. */
  name: string;
  size: number;
  parts: OutputPart[];
}

/**
 * Add the flat concatenation of `g`'s outputs to `g` (the training graph, shapes inferred), make it the graph's
 * only output, and return where each output lies in it. Every output needs a known per-sample shape.
 */
export function flattenOutputs(g: Graph, file: string | undefined): FlatOutputs {
  const parts: OutputPart[] = [];
  const flats: string[] = [];
  let offset = 0;
  for (const o of g.outputs) {
    const shape = g.valueInfo.get(o.name)?.shape ?? o.shape;
    const sample = shape?.slice(1);
    if (!shape || shape.length < 1 || !sample?.every((d): d is number => typeof d === "number")) {
      throw new ImportError(`output '${o.name}' has no fixed shape per sample ([${shape ?? "unknown"}])`, {
        file,
        value: o.name,
      });
    }
    const size = sample.reduce((a, b) => a * b, 1);
    parts.push({ name: o.name, shape: shape.map((d) => d ?? "?"), offset, size });
    offset += size;
    flats.push(
      shape.length === 2 ? o.name : g.op("Flatten", [o.name], { axis: 1 }, { name: `${o.name}.flatten` }),
    );
  }
  const name =
    flats.length === 1 && flats[0] !== parts[0]!.name
      ? flats[0]!
      : g.op("Concat", flats, { axis: 1 }, { name: "outputs.flat", output: g.uniqueName("outputs.flat") });
  g.outputs = [{ name, dtype: "float32", shape: ["batch", offset] }];
  g.invalidate();
  inferShapes(g);
  return { name, size: offset, parts };
}
