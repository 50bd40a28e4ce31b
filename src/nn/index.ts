export * from "./builder.js";
export * from "./flops.js";
export * from "./init.js";
export * from "./model.js";
export * from "./sequential.js";
export * from "./zoo.js";
