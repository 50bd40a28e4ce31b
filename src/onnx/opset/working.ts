/**
 * The ai.onnx opset every qat graph is brought to: models are normalised to it on import, and graphs built by qat
 * are stamped with it. 17 is the version DESIGN.md lists as tested against onnxruntime.
 */
export const WORKING_OPSET = 17;
