import { type DType, dtypeFromCode } from "../dtype.js";
import type { RuleCtx, ShapeRule } from "./context.js";
import { fmt, normAxis, unify } from "./dims.js";

/** Scale and zero point are scalars (per tensor), 1-D along `axis` (per axis), or blocked (block_size, 21+). */
function checkParams(c: RuleCtx): void {
  const x = c.shape(0);
  const s = c.shape(1);
  const z = c.shape(2);
  if (s && z && (s.length !== z.length || s.some((d, i) => unify(d, z[i]!) === undefined))) {
    c.fail(`scale ${fmt(s)} and zero point ${fmt(z)} differ in shape`);
  }
  if (!x || !s || s.length === 0 || (s.length === 1 && s[0] === 1)) return;
  if (c.int("block_size", 0) > 0) return;
  const axis = c.int("axis", 1);
  const a = normAxis(axis, x.length);
  if (a === undefined) c.fail(`axis ${axis} is out of range for input ${fmt(x)}`);
  if (s.length !== 1 || unify(s[0]!, x[a]!) === undefined) {
    c.fail(`per-axis scale ${fmt(s)} does not match dim ${a} (${x[a]}) of input ${fmt(x)}`);
  }
}

/** QuantizeLinear: the input's shape; type of the zero point, else output_dtype (21+), else uint8. */
const quantize: ShapeRule = (c: RuleCtx) => {
  checkParams(c);
  const od = c.int("output_dtype", 0);
  const dtype: DType | undefined = c.dtype(2) ?? (od ? dtypeFromCode(od) : c.has(2) ? undefined : "uint8");
  return [{ dtype, shape: c.shape(0) }];
};

/** DequantizeLinear: the input's shape; type of the scale (float32 before opset 19). */
const dequantize: ShapeRule = (c: RuleCtx) => {
  checkParams(c);
  return [{ dtype: c.dtype(1) ?? "float32", shape: c.shape(0) }];
};

export const quantRules: Record<string, ShapeRule> = {
  QuantizeLinear: quantize,
  DequantizeLinear: dequantize,
};
