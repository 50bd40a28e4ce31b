/** The real models the fuzzer mutates: ../shared/models beside the repository, or a folder given. */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface FuzzModel {
  name: string;
  bytes: Uint8Array;
}

const HERE = dirname(fileURLToPath(import.meta.url));
/** ../shared/models beside the repository, found from this file (bench/fuzz/ or dist/bench/fuzz/). */
export const SHARED_MODELS =
  [resolve(HERE, "../../../shared/models"), resolve(HERE, "../../../../shared/models")].find((d) => {
    try {
      return readdirSync(d).some((f) => f.endsWith(".onnx"));
    } catch {
      return false;
    }
  }) ?? resolve(HERE, "../../../shared/models");

export function loadModels(dir = SHARED_MODELS): FuzzModel[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".onnx"))
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
}
