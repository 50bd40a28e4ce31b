import type { GradientRule, RuleSet } from "./rule.js";
import { activationRules } from "./rules/activation.js";
import { batchNormRules } from "./rules/batchnorm.js";
import { concatSplitRules } from "./rules/concat-split.js";
import { convRules } from "./rules/conv.js";
import { convTransposeRules } from "./rules/conv-transpose.js";
import { dropoutRules } from "./rules/dropout.js";
import { elementwiseRules } from "./rules/elementwise.js";
import { matmulRules } from "./rules/matmul.js";
import { poolRules } from "./rules/pool.js";
import { reduceRules } from "./rules/reduce.js";
import { reshapeRules } from "./rules/reshape.js";
import { resizeRules } from "./rules/resize.js";
import { slicePadRules } from "./rules/slice-pad.js";
import { softmaxRules } from "./rules/softmax.js";
import { softmaxCrossEntropyRules } from "./rules/softmax-cross-entropy.js";
import { unaryRules } from "./rules/unary.js";

const BUILTIN: RuleSet = {
  ...elementwiseRules,
  ...unaryRules,
  ...activationRules,
  ...matmulRules,
  ...convRules,
  ...convTransposeRules,
  ...poolRules,
  ...batchNormRules,
  ...reshapeRules,
  ...concatSplitRules,
  ...slicePadRules,
  ...softmaxRules,
  ...reduceRules,
  ...dropoutRules,
  ...resizeRules,
  ...softmaxCrossEntropyRules,
};

const rules = new Map<string, GradientRule>(Object.entries(BUILTIN));

const key = (opType: string, domain = "") =>
  domain === "" || domain === "ai.onnx" ? opType : `${domain}::${opType}`;

/** The gradient rule for an op type (in `domain`, default ai.onnx), if qat has one. */
export function gradientRule(opType: string, domain = ""): GradientRule | undefined {
  return rules.get(key(opType, domain));
}

/** Whether qat can train through an op type (ai.onnx unless `domain` is given). */
export function hasGradientRule(opType: string, domain = ""): boolean {
  return rules.has(key(opType, domain));
}

/** The op types qat can differentiate, sorted (custom-domain rules as "domain::Op"). */
export function supportedOps(): string[] {
  return [...rules.keys()].sort();
}

/**
 * Register a rule for an op type, e.g. a fake-quant op's straight-through estimator. Replacing a built-in rule
 * is refused unless `replace` is set, so two modules cannot silently fight over one op.
 */
export function registerGradientRule(
  opType: string,
  rule: GradientRule,
  opts: { domain?: string; replace?: boolean } = {},
): void {
  const k = key(opType, opts.domain);
  if (rules.has(k) && !opts.replace) throw new Error(`a gradient rule for '${k}' is already registered`);
  rules.set(k, rule);
}
