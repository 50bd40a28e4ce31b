/**
 * Reverse-mode autodiff that emits ONNX: `appendBackward` appends to a forward graph the nodes computing the
 * gradients of a loss, so one ONNX Runtime session run computes loss and gradients together.
 */
export { appendBackward, type BackwardOptions, stopsGradient } from "./backward.js";
export { GradContext } from "./context.js";
export { AutodiffError } from "./errors.js";
export { gradientRule, hasGradientRule, registerGradientRule, supportedOps } from "./registry.js";
export type { GradientRule, RuleSet } from "./rule.js";
