import { encodeModel, loadModel, modelOf } from "../onnx/codec.js";
import { OnnxError } from "../onnx/errors.js";
import { cloneGraph, type Graph } from "../onnx/ir.js";
import { WORKING_OPSET } from "../onnx/opset/working.js";
import type { Tensor } from "../onnx/tensor.js";
import { writeFileAtomic } from "../util/atomic.js";

/** Prefix of the initializers that hold training state (optimizer moments, step counters) in a checkpoint. */
export const STATE_PREFIX = "qat.state.";
const META_KEY = "qat.checkpoint";

export interface Checkpoint {
  /** The eval graph with the trained parameters as its initializers: a checkpoint runs in any ONNX runtime. */
  graph: Graph;
  /** Training state that is not part of the model (optimizer moments), by name. */
  state: Map<string, Tensor>;
  /** Where training stands and how it was configured (JSON-serialisable). */
  meta: Record<string, unknown>;
}

/**
 * Write a checkpoint as one ONNX file: the eval graph plus the optimizer state as extra (unused) initializers and the
 * metadata as a JSON metadata property. Written atomically: a reader sees the previous checkpoint or this one.
 */
export function saveCheckpoint(path: string, ck: Checkpoint): void {
  const g = cloneGraph(ck.graph);
  for (const [name, t] of ck.state) g.initializers.set(STATE_PREFIX + name, t);
  const model = modelOf(g, { "": WORKING_OPSET });
  model.metadata[META_KEY] = JSON.stringify(ck.meta);
  writeFileAtomic(path, encodeModel(model));
}

export function loadCheckpoint(path: string): Checkpoint {
  const model = loadModel(path);
  const raw = model.metadata[META_KEY];
  if (raw === undefined) {
    throw new OnnxError(
      "not a qat checkpoint (no qat.checkpoint metadata): pass a run folder or its checkpoint.onnx",
      {
        file: path,
      },
    );
  }
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(raw);
  } catch {
    throw new OnnxError("the qat.checkpoint metadata is not valid JSON", { file: path });
  }
  const g = model.graph;
  const state = new Map<string, Tensor>();
  for (const [name, t] of [...g.initializers]) {
    if (!name.startsWith(STATE_PREFIX)) continue;
    state.set(name.slice(STATE_PREFIX.length), t);
    g.initializers.delete(name);
  }
  return { graph: g, state, meta };
}
