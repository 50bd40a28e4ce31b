/**
 * The ai.onnx opset every qat graph is brought to: models are normalised to it on import, and graphs built by qat
 * are stamped with it. 17 because every op qat trains (Conv, Gemm, pools, BatchNormalization in training mode,
 * SoftmaxCrossEntropyLoss, Q/DQ per tensor and per axis, …) was checked in onnxruntime against a float64 reference
 * at this opset, and it is old enough for the runtime a board carries (docs/decisions.md, "Working opset 17").
 */
export const WORKING_OPSET = 17;
