import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** ../shared beside the repository root, found from this file so a clone anywhere works. */
export const SHARED = resolve(dirname(fileURLToPath(import.meta.url)), "../../../shared");
export const SHARED_MODELS = join(SHARED, "models");

/** The .onnx files in ../shared/models, sorted. */
export function sharedModels(): string[] {
  return readdirSync(SHARED_MODELS)
    .filter((f) => f.endsWith(".onnx"))
    .sort();
}
