/**
 * Distillation losses as graph losses (step.ts `GraphLoss`): the model (the student) learns to reproduce a teacher's
 * outputs, fed per batch as the step's float32 targets, so no labels are needed. A model's output is one [batch, N]
 * value (imported multi-output models are flattened per sample, src/nn/import/outputs.ts); each segment of it gets
 * the loss that suits what it holds:
 * - "softmax": class scores (logits) in groups of `classes` (a classifier's row, or a detector's per-anchor classes):
 *   KL(p_teacher ‖ p_student) of softmax(z / T), times T² so the gradient's size does not shrink with T (Hinton et
 *   al. 2015, "Distilling the Knowledge in a Neural Network").
 * - "sigmoid": independent logits (per-anchor objectness): binary cross-entropy against σ(z_teacher / T), which is
 *   the binary KL divergence up to a constant, times T².
 * - "regression": boxes, keypoints, embeddings: mean squared error, multiplied by `scale` (1 / the teacher's
 *   variance, so segments in different units weigh alike).
 * With labels, cross-entropy on one softmax segment can be added: the targets then carry the class index as one
 * extra column after the teacher's N values.
 * Ops used: Slice, Reshape, Mul, Sub, LogSoftmax, Softmax, Softplus, ReduceSum, ReduceMean, Cast,
 * SoftmaxCrossEntropyLoss — each has a gradient rule (src/autodiff/rules).
 */
import type { Graph } from "../onnx/ir.js";
import { f32, tensor } from "../onnx/tensor.js";
import { bceWithLogitsLoss, crossEntropyLoss } from "./losses.js";
import type { GraphLoss } from "./step.js";

export type DistillKind = "softmax" | "sigmoid" | "regression";

export interface DistillSegment {
  /** The output the segment holds (named in errors and node names). */
  name: string;
  /** Where it lies in the per-sample [N] values, and how many values it has. */
  offset: number;
  size: number;
  kind: DistillKind;
  /** softmax: values per distribution (default: the whole segment); `size` must be a multiple of it. */
  classes?: number;
  /** softmax and sigmoid: temperature T (default 1). */
  temperature?: number;
  /** regression: the MSE is multiplied by this (e.g. 1 / the teacher's variance). Default 1. */
  scale?: number;
  /** The segment's weight in the sum (default 1). */
  weight?: number;
}

export interface DistillLossSpec {
  /** The model output's per-sample width N (the sum of the segments' sizes, or more: uncovered values are free). */
  size: number;
  segments: DistillSegment[];
  /** Add weight × cross-entropy of segment `segment` (a softmax one) against the class in target column N. */
  labels?: { segment: number; weight: number };
}

export class DistillLossError extends Error {
  override name = "DistillLossError";
}

/** The distillation loss as a GraphLoss for buildTrainingStep (targets: [batch, N] or [batch, N + 1] with labels). */
export function distillLoss(spec: DistillLossSpec): GraphLoss {
  checkSpec(spec);
  return {
    kind: "graph",
    name: "distill",
    targetShape: [spec.size + (spec.labels ? 1 : 0)],
    build: (g, output, targets) => appendDistillLoss(g, output, targets, spec),
  };
}

function checkSpec(spec: DistillLossSpec): void {
  if (!spec.segments.length)
    throw new DistillLossError("a distillation loss needs at least one output segment");
  for (const s of spec.segments) {
    const where = `output segment '${s.name}'`;
    if (!(s.size > 0 && s.offset >= 0 && s.offset + s.size <= spec.size))
      throw new DistillLossError(
        `${where} [${s.offset}, ${s.offset + s.size}) lies outside the ${spec.size} outputs`,
      );
    const classes = s.classes ?? s.size;
    if (s.kind === "softmax" && (classes < 2 || s.size % classes !== 0))
      throw new DistillLossError(
        `${where}: ${s.size} values do not split into softmax groups of ${classes} (≥ 2)`,
      );
    for (const [what, v] of [
      ["temperature", s.temperature],
      ["scale", s.scale],
      ["weight", s.weight],
    ] as const)
      if (v !== undefined && !(v > 0 && Number.isFinite(v)))
        throw new DistillLossError(`${where}: ${what} must be a positive number, got ${v}`);
  }
  if (spec.labels) {
    const s = spec.segments[spec.labels.segment];
    if (s?.kind !== "softmax" || (s.classes ?? s.size) !== s.size)
      throw new DistillLossError(
        `cross-entropy with labels needs a softmax segment holding one distribution, got segment ${spec.labels.segment}`,
      );
  }
}

/** Appends the loss of `spec` on `output` ([batch, ≥N]) against `targets`; returns the scalar loss. */
export function appendDistillLoss(g: Graph, output: string, targets: string, spec: DistillLossSpec): string {
  checkSpec(spec);
  const terms: string[] = [];
  for (const s of spec.segments) {
    const student = columns(g, output, s.offset, s.size, `distill.${s.name}.student`);
    const teacher = columns(g, targets, s.offset, s.size, `distill.${s.name}.teacher`);
    let term: string;
    if (s.kind === "softmax") term = softmaxKl(g, student, teacher, s);
    else if (s.kind === "sigmoid") term = sigmoidKl(g, student, teacher, s);
    else {
      const d = g.op("Sub", [student, teacher], {}, { name: `distill.${s.name}.diff` });
      term = g.op("ReduceMean", [g.op("Mul", [d, d])], { keepdims: 0 }, { name: `distill.${s.name}.mse` });
      if ((s.scale ?? 1) !== 1) term = times(g, term, s.scale!, `distill.${s.name}.scale`);
    }
    if ((s.weight ?? 1) !== 1) term = times(g, term, s.weight!, `distill.${s.name}.weight`);
    terms.push(term);
  }
  if (spec.labels) {
    const s = spec.segments[spec.labels.segment]!;
    const label = g.op(
      "Cast",
      [g.op("Squeeze", [columns(g, targets, spec.size, 1, "distill.label"), axes(g, [1])])],
      {
        to: 7,
      },
    );
    const ce = crossEntropyLoss(g, columns(g, output, s.offset, s.size, "distill.labelled"), label);
    terms.push(times(g, ce, spec.labels.weight, "distill.cross_entropy.weight"));
  }
  return terms.reduce((a, b) => g.op("Add", [a, b]));
}

/** KL(softmax(t/T) ‖ softmax(s/T)) · T², summed over classes, mean over samples and groups. */
function softmaxKl(g: Graph, student: string, teacher: string, s: DistillSegment): string {
  const classes = s.classes ?? s.size;
  const t = s.temperature ?? 1;
  const shape = g.constant(g.uniqueName(`distill.${s.name}.groups`), tensor("int64", [3], [0, -1, classes]));
  const logits = (v: string) => g.op("Reshape", [t === 1 ? v : times(g, v, 1 / t, `${v}.temper`), shape]);
  const logPs = g.op("LogSoftmax", [logits(student)], { axis: -1 }, { name: `distill.${s.name}.log_ps` });
  const zt = logits(teacher);
  const pt = g.op("Softmax", [zt], { axis: -1 });
  const logPt = g.op("LogSoftmax", [zt], { axis: -1 });
  const kl = g.op("ReduceSum", [g.op("Mul", [pt, g.op("Sub", [logPt, logPs])]), axes(g, [2])], {
    keepdims: 0,
  });
  return times(g, g.op("ReduceMean", [kl], { keepdims: 0 }), t * t, `distill.${s.name}.kl`);
}

/** BCE(σ(s/T), σ(t/T)) · T²: the binary KL divergence plus the teacher's entropy (constant for the student). */
function sigmoidKl(g: Graph, student: string, teacher: string, s: DistillSegment): string {
  const t = s.temperature ?? 1;
  const zs = t === 1 ? student : times(g, student, 1 / t, `distill.${s.name}.temper_s`);
  const zt = t === 1 ? teacher : times(g, teacher, 1 / t, `distill.${s.name}.temper_t`);
  return times(g, bceWithLogitsLoss(g, zs, g.op("Sigmoid", [zt])), t * t, `distill.${s.name}.bce`);
}

/** Columns [from, from + n) of a [batch, …] value. */
function columns(g: Graph, v: string, from: number, n: number, name: string): string {
  return g.op(
    "Slice",
    [v, axes(g, [from]), axes(g, [from + n]), axes(g, [1])],
    {},
    { name: g.uniqueName(name) },
  );
}

function axes(g: Graph, v: number[]): string {
  return g.constant(g.uniqueName("distill.i64"), tensor("int64", [v.length], v));
}

function times(g: Graph, v: string, k: number, name: string): string {
  if (k === 1) return v;
  return g.op(
    "Mul",
    [v, g.constant(g.uniqueName(`${name}.k`), f32([], [k]))],
    {},
    { name: g.uniqueName(name) },
  );
}
