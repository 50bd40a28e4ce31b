/**
 * Quantization-aware training: fake-quant ops lowered to ONNX QuantizeLinear/DequantizeLinear, straight-through
 * and LSQ/PACT gradients, qconfigs and presets, observers, BN folding, placement, calibration and sensitivity.
 */

export * from "./adaround.js";
export * from "./adaround-graph.js";
export * from "./bias-correction.js";
export * from "./bn-fold.js";
export * from "./calibrate.js";
export * from "./cle.js";
export * from "./distill.js";
export * from "./fake-quant.js";
export * from "./layer-data.js";
export * from "./mixed-precision.js";
export * from "./observe-graph.js";
export * from "./observer.js";
export * from "./placement.js";
export * from "./prepare.js";
export * from "./qat-train.js";
export * from "./qconfig.js";
export * from "./qparams.js";
export * from "./sensitivity.js";
export { fakeQuantGradient, registerFakeQuantGradient } from "./ste.js";
