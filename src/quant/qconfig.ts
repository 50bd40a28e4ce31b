import type { QuantDType, ScaleGrad } from "./fake-quant.js";
import type { ObserverKind } from "./observer.js";

/** How one tensor (a layer's weight, or an activation) is quantized. */
export interface TensorQConfig {
  bits: number;
  /** Symmetric: zero point fixed at 0 (signed) or at the middle code (unsigned symmetric is not offered). */
  symmetric: boolean;
  /** Signed (int8 storage) or unsigned (uint8). */
  signed: boolean;
  /** Drop the most negative code (−127…127 for 8 bits): TensorRT's weights. */
  narrowRange: boolean;
  /** Per-channel along the output-channel axis (weights only). */
  perChannel: boolean;
  /** How the scale is learned during QAT. */
  grad: ScaleGrad;
  /** Learn the zero point too (asymmetric only). */
  learnZeroPoint: boolean;
  /** Observer that sets the starting scale (calibration). */
  observer: ObserverKind;
}

export interface LayerQConfig {
  weight: TensorQConfig;
  activation: TensorQConfig;
}

/** A qconfig: a default for every layer, per-layer overrides, and layers kept in float. */
export interface QConfig {
  /** Preset it started from (for the record). */
  preset: string;
  default: LayerQConfig;
  /** Layer name (the parameter prefix, e.g. "conv1", "layer2.0.conv1") → overrides. */
  layers: Record<string, { weight?: Partial<TensorQConfig>; activation?: Partial<TensorQConfig> }>;
  /** Layers left in float (no weight fake-quant, and their output is not quantized). */
  keepFloat: string[];
  /** Steps of QAT with BN batch statistics before they are frozen (running statistics used, no longer updated). */
  freezeBnAfter: number;
  /** QAT steps during which scales follow their observers (moving averages) before they are learned. */
  observerSteps: number;
}

export class QConfigError extends Error {
  override name = "QConfigError";
  readonly exitCode = 2;
}

const act = (o: Partial<TensorQConfig> = {}): TensorQConfig => ({
  bits: 8,
  symmetric: false,
  signed: false,
  narrowRange: false,
  perChannel: false,
  grad: "lsq",
  learnZeroPoint: false,
  observer: "moving-average",
  ...o,
});
const wt = (o: Partial<TensorQConfig> = {}): TensorQConfig => ({
  bits: 8,
  symmetric: true,
  signed: true,
  narrowRange: false,
  perChannel: true,
  grad: "lsq",
  learnZeroPoint: false,
  observer: "minmax",
  ...o,
});

const base = { layers: {}, keepFloat: [], freezeBnAfter: 0, observerSteps: 0 };

/**
 * Presets, named after the runtime they target:
 * - ort-cpu: uint8 asymmetric activations, int8 symmetric per-channel weights (ORT's QDQ defaults).
 * - ort-cpu-x86-safe: the same with 7-bit weights, so u8·s8 kernels on x86 without VNNI cannot saturate their
 *   16-bit intermediate sums (ORT's AVX2 kernels add pairs of u8·s8 products in 16 bits; with 8-bit weights
 *   QLinearConv was measured off by up to 29 LSB, with 7-bit weights exact; see docs/decisions.md on the
 *   x86-64 board without VNNI).
 * - tensorrt: int8 symmetric everywhere, zero point 0, narrow-range per-channel weights.
 * - w4a8: 4-bit symmetric per-channel weights (int8 storage, −8…7), 8-bit uint8 activations.
 */
export const PRESETS: Record<string, () => QConfig> = {
  "ort-cpu": () => ({ preset: "ort-cpu", default: { weight: wt(), activation: act() }, ...base }),
  "ort-cpu-x86-safe": () => ({
    preset: "ort-cpu-x86-safe",
    default: { weight: wt({ bits: 7 }), activation: act() },
    ...base,
  }),
  tensorrt: () => ({
    preset: "tensorrt",
    default: { weight: wt({ narrowRange: true }), activation: act({ symmetric: true, signed: true }) },
    ...base,
  }),
  w4a8: () => ({
    preset: "w4a8",
    default: { weight: wt({ bits: 4, observer: "mse" }), activation: act() },
    ...base,
  }),
};

export const presetNames = (): string[] => Object.keys(PRESETS);

export function preset(name: string): QConfig {
  const p = PRESETS[name];
  if (!p) throw new QConfigError(`no qconfig preset '${name}'; available: ${presetNames().join(", ")}`);
  const q = p();
  return { ...q, layers: {}, keepFloat: [] };
}

/** The integer range and storage type a tensor config gives. */
export function intRange(t: TensorQConfig): { qmin: number; qmax: number; dtype: QuantDType } {
  if (t.signed) {
    const qmax = 2 ** (t.bits - 1) - 1;
    return { qmin: t.narrowRange ? -qmax : -qmax - 1, qmax, dtype: "int8" };
  }
  return { qmin: t.narrowRange ? 1 : 0, qmax: 2 ** t.bits - 1, dtype: "uint8" };
}

/** Check a qconfig, naming the layer and field that are wrong. */
export function validateQConfig(q: QConfig, layerNames?: string[]): void {
  const check = (t: TensorQConfig, where: string) => {
    if (!Number.isInteger(t.bits) || t.bits < 2 || t.bits > 8) {
      throw new QConfigError(`${where}: bits must be an integer from 2 to 8, got ${t.bits}`);
    }
    if (t.symmetric && !t.signed)
      throw new QConfigError(`${where}: symmetric quantization needs signed=true`);
    if (t.symmetric && t.learnZeroPoint)
      throw new QConfigError(`${where}: a symmetric quantizer has no zero point to learn`);
    if (!["lsq", "pact", "ste"].includes(t.grad))
      throw new QConfigError(`${where}: grad must be lsq, pact or ste, got ${t.grad}`);
  };
  check(q.default.weight, "default weight");
  check(q.default.activation, "default activation");
  const known = layerNames ? new Set(layerNames) : undefined;
  for (const name of [...Object.keys(q.layers), ...q.keepFloat]) {
    if (known && !known.has(name)) {
      throw new QConfigError(
        `qconfig names layer '${name}', which the model does not have; layers: ${[...known].join(", ")}`,
      );
    }
  }
  for (const name of Object.keys(q.layers)) {
    const l = layerConfig(q, name);
    check(l.weight, `layer '${name}' weight`);
    check(l.activation, `layer '${name}' activation`);
  }
  for (const k of ["freezeBnAfter", "observerSteps"] as const) {
    if (!Number.isInteger(q[k]) || q[k] < 0)
      throw new QConfigError(`${k} must be a whole number ≥ 0, got ${q[k]}`);
  }
}

/** The resolved config of one layer. */
export function layerConfig(q: QConfig, layer: string): LayerQConfig {
  const o = q.layers[layer] ?? {};
  return {
    weight: { ...q.default.weight, ...o.weight },
    activation: { ...q.default.activation, ...o.activation },
  };
}

export function isFloatLayer(q: QConfig, layer: string): boolean {
  return q.keepFloat.includes(layer);
}

/** A qconfig from a preset plus `--keep-float` layers and `layer=bits` weight overrides. */
export function qconfigFrom(
  presetName: string,
  opts: {
    keepFloat?: string[];
    weightBits?: Record<string, number>;
    freezeBnAfter?: number;
    observerSteps?: number;
  } = {},
): QConfig {
  const q = preset(presetName);
  q.keepFloat = [...(opts.keepFloat ?? [])];
  for (const [layer, bits] of Object.entries(opts.weightBits ?? {})) q.layers[layer] = { weight: { bits } };
  if (opts.freezeBnAfter !== undefined) q.freezeBnAfter = opts.freezeBnAfter;
  if (opts.observerSteps !== undefined) q.observerSteps = opts.observerSteps;
  validateQConfig(q);
  return q;
}
