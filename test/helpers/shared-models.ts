import { readdirSync } from "node:fs";
import { MODELS } from "./paths.js";

/** ../shared/models beside the repository root (see paths.ts). */
export const SHARED_MODELS = MODELS;

/** The .onnx files in ../shared/models, sorted. */
export function sharedModels(): string[] {
  return readdirSync(SHARED_MODELS)
    .filter((f) => f.endsWith(".onnx"))
    .sort();
}
