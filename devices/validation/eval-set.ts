/** The evaluation set of a validation, read from a named dataset or a path with the data layer's loaders. */
import { sampleSize } from "../../src/data/dataset.js";
import { openDataset } from "../../src/data/open.js";
import type { EvalSet } from "./options.js";

export interface EvalSetOptions {
  /** Folder searched first for a named dataset. */
  dataDir?: string;
  split?: "train" | "test";
  /** The first `limit` samples (0 or absent: all). */
  limit?: number;
}

/**
 * The evaluation set: the dataset's stored values (e.g. raw 0–255 MNIST pixels, as the exported models normalise
 * inside), the first `limit` samples, in the dataset's order.
 */
export async function loadEvalSet(spec: string, opts: EvalSetOptions = {}): Promise<EvalSet> {
  const ds = await openDataset(spec, { dataDir: opts.dataDir, split: opts.split ?? "test" });
  const limit = opts.limit ?? 0;
  const n = limit > 0 ? Math.min(limit, ds.length) : ds.length;
  const size = sampleSize(ds.inputShape);
  const inputs = new Float32Array(n * size);
  const y = new BigInt64Array(n);
  ds.fill(
    Array.from({ length: n }, (_, i) => i),
    inputs,
    y,
  );
  return { inputs, sampleShape: [...ds.inputShape], labels: Array.from(y, Number) };
}
