/**
 * Flags several commands share, turned into the library's typed options: the input convention of an imported
 * model, per-layer weight bits, layer lists, and the parity check's data.
 */
import type { Dataset } from "../src/data/dataset.js";
import { openDataset } from "../src/data/open.js";
import type { QatSource } from "../src/export/source.js";
import type { TrainConfig } from "../src/pipeline/config.js";
import { parseAssignments, parseList, parseNumber, parseNumberList } from "./args.js";
import { UsageError } from "./errors.js";

/** --input-scale/--input-mean/--input-std of an imported model (undefined: none given). */
export function inputConvention(f: {
  inputScale?: string;
  inputMean?: string;
  inputStd?: string;
}): TrainConfig["input"] {
  if (f.inputScale === undefined && f.inputMean === undefined && f.inputStd === undefined) return undefined;
  const c: NonNullable<TrainConfig["input"]> = {};
  if (f.inputScale !== undefined) c.scale = parseNumber(f.inputScale, "--input-scale");
  if (f.inputMean !== undefined) c.mean = parseNumberList(f.inputMean, "--input-mean");
  if (f.inputStd !== undefined) c.std = parseNumberList(f.inputStd, "--input-std", { above: 0 });
  return c;
}

/** --weight-bits "conv1=8,fc=4" → { conv1: 8, fc: 4 }. */
export function layerBits(spec: string | undefined): Record<string, number> {
  return parseAssignments(spec, "--weight-bits", { integer: true, min: 2, max: 16 });
}

/** --keep-float "conv1, fc" → ["conv1", "fc"]. */
export function layerList(spec: string | undefined, flag = "--keep-float"): string[] {
  return parseList(spec, flag);
}

/** The parity data: --data, else the dataset the run was trained on (its test split). */
export function parityData(
  f: { data?: string; dataDir?: string; split: "train" | "test" },
  src?: QatSource,
): Promise<Dataset> {
  const spec = f.data ?? src?.dataset;
  if (!spec)
    throw new UsageError(
      "the parity check needs data: give --data <dataset> (the checkpoint does not name its dataset)",
    );
  return openDataset(spec, { dataDir: f.dataDir ?? src?.dataDir, split: f.split });
}
