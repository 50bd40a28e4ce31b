import { existsSync, readFileSync } from "node:fs";
import type { TrainConfig } from "../src/pipeline/config.js";
import { parseNumber } from "./args.js";
import { UsageError } from "./errors.js";

/**
 * `qat.config.json`: sections model, data, optimizer, schedule, training (and quantization, read by `--qat`).
 *   { "model": { "name": "resnet8" },
 *     "data": { "name": "mnist", "dir": "../shared/data", "batchSize": 64, "valFraction": 0.1,
 *               "augment": { "cropPadding": 2, "flip": false } },
 *     "optimizer": { "kind": "sgd", "momentum": 0.9, "weightDecay": 0.0005 },
 *     "schedule": { "kind": "cosine", "lr": 0.1 },
 *     "training": { "epochs": 2, "seed": 1, "threads": 2, "patience": 0, "checkpointEvery": 200 } }
 */
export function readConfigFile(path: string, required: boolean): Partial<TrainConfig> {
  if (!existsSync(path)) {
    if (required) throw new UsageError(`config file ${path} not found`);
    return {};
  }
  let j: Record<string, Record<string, unknown>>;
  try {
    j = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  const known = new Set(["model", "data", "optimizer", "schedule", "training", "quantization"]);
  for (const k of Object.keys(j)) {
    if (!known.has(k))
      throw new UsageError(
        `config file ${path}: unknown section "${k}" (sections: ${[...known].join(", ")})`,
      );
  }
  const c: Partial<TrainConfig> & Record<string, unknown> = {};
  const m = j.model ?? {};
  const d = j.data ?? {};
  const t = j.training ?? {};
  if (m.name !== undefined) c.model = String(m.name);
  if (d.name !== undefined) c.data = String(d.name);
  if (d.dir !== undefined) c.dataDir = String(d.dir);
  if (d.batchSize !== undefined) c.batchSize = parseNumber(d.batchSize as number, `${path}: data.batchSize`);
  if (d.valFraction !== undefined)
    c.valFraction = parseNumber(d.valFraction as number, `${path}: data.valFraction`);
  if (d.augment !== undefined) c.augment = { cropPadding: 0, flip: false, ...(d.augment as object) };
  if (j.optimizer) c.optimizer = j.optimizer as unknown as TrainConfig["optimizer"];
  if (j.schedule) c.schedule = j.schedule as unknown as TrainConfig["schedule"];
  for (const k of [
    "epochs",
    "seed",
    "threads",
    "patience",
    "checkpointEvery",
    "maxSteps",
    "evalLimit",
  ] as const) {
    // ranges are checked by resolveConfig, which names the setting
    if (t[k] !== undefined) c[k] = parseNumber(t[k] as number, `${path}: training.${k}`);
  }
  return c;
}
