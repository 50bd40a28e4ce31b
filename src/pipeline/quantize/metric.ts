/**
 * The metric a quantize run is judged by, as a plug-in: a `QuantMetric` sees, batch by batch, the float model's
 * outputs (the reference), the candidate's outputs and the labels, and reports one number in points (higher is
 * better; the budget is a drop in these points) plus details. Two come with qat: top-1 accuracy with labels, and
 * fidelity to the float model without. A detector's mAP plugs in the same way (detect-metric.ts: it sees every output
 * and the labels, which index the held-out images' ground truth); the data brings it (QuantizeData.metric).
 */
import { FidelityMeter, type OutputValues } from "../../train/fidelity.js";
import { ClassificationMetrics } from "../../train/metrics.js";

export interface MetricValue {
  /** The number the budget is checked on, in points. */
  value: number;
  details: Record<string, unknown>;
}

export interface MetricBatch {
  labels: ArrayLike<bigint | number>;
  /** Rows of the batch to score. */
  take: number;
  reference: Record<string, OutputValues>;
  candidate: Record<string, OutputValues>;
}

export interface MetricAccumulator {
  add(b: MetricBatch): void;
  result(): MetricValue;
}

export interface QuantMetric {
  readonly name: string;
  readonly unit: string;
  /** Whether it needs labels. */
  readonly labelled: boolean;
  start(): MetricAccumulator;
}

/** The first output shaped [N, C] (C ≥ 2): the class scores of a classifier, if the model is one. */
export function classifierOutput(outputs: Record<string, OutputValues>): string | undefined {
  return Object.entries(outputs).find(([, v]) => v.dims.length === 2 && v.dims[1]! >= 2)?.[0];
}

/** Per-output SQNR (dB) and cosine of the candidate against the float model, reported by both metrics. */
function fidelityDetails(meter: FidelityMeter): Record<string, Record<string, number>> {
  return meter.result();
}

/** Top-1 accuracy (top-5 in the details) of the classifier output against the labels. */
export const accuracyMetric: QuantMetric = {
  name: "top-1 accuracy",
  unit: "%",
  labelled: true,
  start(): MetricAccumulator {
    let metrics: ClassificationMetrics | undefined;
    const meter = new FidelityMeter();
    return {
      add(b) {
        const out = classifierOutput(b.candidate);
        if (!out) throw new Error("top-1 accuracy needs an output shaped [batch, classes]");
        const v = b.candidate[out]!;
        metrics ??= new ClassificationMetrics(v.dims[1]!);
        metrics.add(v.data, b.labels, b.take);
        meter.add(b.reference, b.candidate);
      },
      result() {
        return {
          value: 100 * (metrics?.accuracy ?? 0),
          details: { top5: 100 * (metrics?.top5Accuracy ?? 0), outputs: fidelityDetails(meter) },
        };
      },
    };
  },
};

/**
 * Fidelity without labels: top-1 agreement with the float model (in %) when the model has a classifier output;
 * otherwise 100 × the lowest cosine similarity over its outputs (a detector's score and box tensors: the worst one
 * decides). SQNR and cosine of every output are in the details.
 */
export const fidelityMetric: QuantMetric = {
  name: "fidelity",
  unit: "%",
  labelled: false,
  start(): MetricAccumulator {
    const meter = new FidelityMeter();
    let classifier: string | undefined;
    return {
      add(b) {
        classifier ??= classifierOutput(b.reference);
        meter.add(b.reference, b.candidate);
      },
      result() {
        const outputs = meter.result();
        const value = classifier
          ? 100 * outputs[classifier]!.top1Agreement!
          : 100 * Math.min(...Object.values(outputs).map((o) => o.cosine!));
        return {
          value,
          details: {
            measure: classifier ? `top-1 agreement of '${classifier}'` : "lowest cosine over outputs",
            outputs,
          },
        };
      },
    };
  },
};
