/** qat: quantization-aware training in the deployment format. The library behind the `qat` command. */

// ONNX model layer
export * from "./onnx/codec.js";
export * from "./onnx/dtype.js";
export * from "./onnx/errors.js";
export * from "./onnx/ir.js";
export * from "./onnx/tensor.js";
export * from "./onnx/shapes.js";
export * from "./onnx/opset.js";
export { foldConstants } from "./onnx/fold.js";
export * from "./onnx/summary.js";

// gradients
export * from "./autodiff/index.js";
export * as expr from "./autodiff/expr.js";

// models
export * from "./nn/index.js";
export * from "./nn/import/index.js";

// training
export * from "./train/losses.js";
export * from "./train/optimizers.js";
export * from "./train/schedules.js";
export * from "./train/step.js";
export * from "./train/config.js";
export * from "./train/checkpoint.js";
export * from "./train/metrics.js";
export { train, evaluate, RUN_FILES, TrainError, type TrainResult, type TrainHooks } from "./train/trainer.js";
export * as data from "./train/data/index.js";

// quantization-aware training and int8 export
export * from "./quant/index.js";
export * from "./export/index.js";

// runtime
export * from "./runtime/session.js";
export * from "./runtime/evaluate.js";

// reports
export * from "./report/index.js";
