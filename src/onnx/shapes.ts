/** Shape and type inference: see ./shapes/index.ts (one file per op family). */
export * from "./shapes/index.js";
