import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, and ../shared beside it (CI clones the repo with shared/ next to it). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const SHARED = join(ROOT, "..", "shared");
export const MODELS = join(SHARED, "models");
export const DATA = join(SHARED, "data");
export const CLI = join(ROOT, "dist", "toolchain", "cli.js");
