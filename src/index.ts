/** qat: quantization-aware training in the deployment format. The library behind the `qat` command. */

export * as expr from "./autodiff/expr.js";
// gradients
export * from "./autodiff/index.js";
export * as data from "./data/index.js";
export * from "./export/index.js";
export * from "./nn/import/index.js";
// models
export * from "./nn/index.js";
// ONNX model layer
export * from "./onnx/codec.js";
export * from "./onnx/dtype.js";
export * from "./onnx/errors.js";
export { foldConstants } from "./onnx/fold.js";
export * from "./onnx/ir.js";
export * from "./onnx/opset.js";
export * from "./onnx/shapes.js";
export * from "./onnx/summary.js";
export * from "./onnx/tensor.js";
export * from "./pipeline/config.js";
export * from "./pipeline/float-run.js";
export { TrainError, type TrainHooks, type TrainResult, train } from "./pipeline/trainer.js";
// quantization-aware training and int8 export
export * from "./quant/index.js";
// reports
export * from "./report/index.js";
// runtime
export * from "./runtime/session.js";
export * from "./train/checkpoint.js";
export * from "./train/evaluate.js";
export { evaluate } from "./train/evaluate.js";
// training
export * from "./train/losses.js";
export * from "./train/metrics.js";
export * from "./train/optimizers.js";
export { RUN_FILES } from "./train/run-folder.js";
export * from "./train/schedules.js";
export * from "./train/step.js";
