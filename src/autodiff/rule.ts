import type { GradContext } from "./context.js";

/**
 * A gradient rule: given the gradients flowing into a node's outputs (`c.dy(i)`), emit nodes computing the
 * gradient of each input the walker needs (`c.needs(i)`) and return their names by input index (undefined for
 * inputs with no gradient). Rules may add optional outputs to the forward node (`c.y(i)`) to read them.
 */
export type GradientRule = (c: GradContext) => (string | undefined)[];

/** A family of rules, keyed by op type (ai.onnx domain). */
export type RuleSet = Record<string, GradientRule>;
