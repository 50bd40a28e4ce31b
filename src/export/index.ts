/**
 * int8 export of QAT checkpoints: QDQ, QOperator, the TensorRT profile and INT4 weights, with a parity check of the
 * exported model (ONNX Runtime, integer kernels) against the fake-quant simulation on every export.
 */
export * from "./errors.js";
export * from "./export.js";
export * from "./float.js";
export * from "./latency.js";
export * from "./parity.js";
export { buildQdq, type OutputStep, outputStep, type QdqBuild, type QdqOptions } from "./qdq.js";
export * from "./qoperator.js";
export * from "./source.js";
export * from "./tensorrt.js";
