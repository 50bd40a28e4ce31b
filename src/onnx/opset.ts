/** Opset normalisation: see ./opset/index.ts (one file per family of converters). */
export * from "./opset/index.js";
