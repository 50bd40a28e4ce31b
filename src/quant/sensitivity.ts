import type { Dataset } from "../data/dataset.js";
import type { NetModel } from "../nn/model.js";
import { evaluateNet } from "../train/evaluate.js";
import { calibrate } from "./calibrate.js";
import type { ObserverKind } from "./observer.js";
import { type Placement, placeQuant } from "./placement.js";
import { applyQuant } from "./prepare.js";
import { type QConfig, qconfigFrom } from "./qconfig.js";

export interface SensitivityOptions {
  /** The qconfig preset whose per-layer effect is measured. */
  preset: string;
  /** Accuracy the proposed mixed-precision qconfig must reach (default: float − maxDrop). */
  target?: number;
  /** Accepted drop from float when no target is given (default 0.005 = 0.5 pt). */
  maxDrop?: number;
  calibrationBatches?: number;
  observer?: ObserverKind;
  /** Evaluate on at most this many test samples (0: all). */
  evalLimit?: number;
  batchSize?: number;
  threads?: number;
  log?: (message: string) => void;
}

export interface LayerSensitivity {
  layer: string;
  /** Accuracy with only this layer quantized (its weight and its input), the rest float. */
  accuracy: number;
  /** accuracy − float accuracy. */
  delta: number;
  weightBits: number;
}

export interface SensitivityReport {
  preset: string;
  float: number;
  /** Every layer quantized as the preset says (post-training, calibrated). */
  quantized: number;
  layers: LayerSensitivity[];
  target: number;
  /** The mixed-precision proposal: layers raised to 8-bit weights or kept in float until the target is met. */
  proposal: {
    keepFloat: string[];
    weightBits: Record<string, number>;
    accuracy: number;
    meetsTarget: boolean;
    flags: string;
  };
}

/**
 * Post-training sensitivity analysis: quantize one layer at a time (its weight and its input activation, calibrated
 * once for the whole model), measure the accuracy delta against float, then propose a mixed-precision qconfig:
 * starting from the preset everywhere, the most sensitive layer still below 8-bit weights is raised to 8 bits, or,
 * when already 8-bit, kept in float, until the accuracy reaches the target.
 */
export async function sensitivity(
  net: NetModel,
  calibration: Dataset,
  test: Dataset,
  opts: SensitivityOptions,
): Promise<SensitivityReport> {
  const log = opts.log ?? (() => {});
  const acc = async (model: NetModel): Promise<number> =>
    (
      await evaluateNet(model, test, {
        batchSize: opts.batchSize,
        limit: opts.evalLimit,
        threads: opts.threads,
      })
    ).accuracy;
  const base = qconfigFrom(opts.preset);
  const full = placeQuant(net, base);
  const qparams = await calibrate(net, full, calibration, {
    batches: opts.calibrationBatches ?? 32,
    batchSize: 64,
    threads: opts.threads,
    observer: opts.observer,
  });
  const floatAcc = await acc(net);
  log(`float accuracy ${(100 * floatAcc).toFixed(2)}%`);
  const layers: LayerSensitivity[] = [];
  for (const w of full.weights) {
    const only: Placement = {
      weights: [w],
      activations: full.activations.filter((a) => a.value === w.input),
    };
    const a = await acc(applyQuant(net, only, qparams));
    layers.push({ layer: w.layer, accuracy: a, delta: a - floatAcc, weightBits: w.cfg.bits });
    log(`${w.layer}: ${(100 * a).toFixed(2)}% (${(100 * (a - floatAcc)).toFixed(2)} pt)`);
  }
  const quantized = await acc(applyQuant(net, full, qparams));
  const target = opts.target ?? floatAcc - (opts.maxDrop ?? 0.005);

  // greedy mixed precision, most sensitive first
  const order = [...layers].sort((x, y) => x.delta - y.delta).map((l) => l.layer);
  const keepFloat: string[] = [];
  const weightBits: Record<string, number> = {};
  let accuracy = quantized;
  const evalMixed = async (): Promise<number> => {
    const q: QConfig = qconfigFrom(opts.preset, { keepFloat, weightBits });
    const p = placeQuant(net, q);
    const qp = await calibrate(net, p, calibration, {
      batches: opts.calibrationBatches ?? 32,
      batchSize: 64,
      threads: opts.threads,
      observer: opts.observer,
    });
    return acc(applyQuant(net, p, qp));
  };
  for (const layer of order) {
    if (accuracy >= target) break;
    const bits = weightBits[layer] ?? full.weights.find((w) => w.layer === layer)!.cfg.bits;
    if (bits < 8) weightBits[layer] = 8;
    else keepFloat.push(layer);
    accuracy = await evalMixed();
    log(
      `proposal: ${bits < 8 ? `${layer} → 8-bit weights` : `${layer} kept float`}: ${(100 * accuracy).toFixed(2)}%`,
    );
  }
  const flags = [
    `--qat ${opts.preset}`,
    keepFloat.length ? `--keep-float ${keepFloat.join(",")}` : "",
    Object.keys(weightBits).length
      ? `--weight-bits ${Object.entries(weightBits)
          .map(([k, v]) => `${k}=${v}`)
          .join(",")}`
      : "",
  ]
    .filter(Boolean)
    .join(" ");
  return {
    preset: opts.preset,
    float: floatAcc,
    quantized,
    layers,
    target,
    proposal: { keepFloat, weightBits, accuracy, meetsTarget: accuracy >= target, flags },
  };
}

/** The sensitivity table as text. */
export function formatSensitivity(r: SensitivityReport): string {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  const w = Math.max(5, ...r.layers.map((l) => l.layer.length));
  const lines = [
    `float ${pct(r.float)}   all layers ${r.preset} (PTQ) ${pct(r.quantized)}`,
    `${"layer".padEnd(w)}  bits  accuracy  delta (pt)`,
    ...r.layers.map(
      (l) =>
        `${l.layer.padEnd(w)}  ${String(l.weightBits).padStart(4)}  ${pct(l.accuracy).padStart(8)}  ${`${l.delta > 0 ? "+" : ""}${(100 * l.delta).toFixed(2)}`.padStart(10)}`,
    ),
    `target ${pct(r.target)}: proposal ${r.proposal.flags} → ${pct(r.proposal.accuracy)}${r.proposal.meetsTarget ? "" : " (target not reached)"}`,
  ];
  return lines.join("\n");
}
