import * as ort from "onnxruntime-node";
import { appendBackward } from "../autodiff/index.js";
import type { NetModel } from "../nn/model.js";
import { modelOf } from "../onnx/codec.js";
import { cloneGraph, type Graph, type Model } from "../onnx/ir.js";
import { inferShapes } from "../onnx/shapes.js";
import { f32, type Tensor } from "../onnx/tensor.js";
import { fromOrt, openSession, type SessionOptions, toOrt } from "../runtime/session.js";
import { argmax } from "./argmax.js";
import { bceWithLogitsLoss, crossEntropyLoss, mseLoss } from "./losses.js";
import { appendOptimizer, type OptimizerSpec } from "./optimizers.js";

export type LossSpec =
  | { kind: "cross-entropy"; labelSmoothing?: number }
  | { kind: "mse" }
  | { kind: "bce-with-logits" }
  | GraphLoss;

/**
 * A loss written as graph nodes by its owner (distillation, detection): the step's `labels` input is float32
 * [batch, ...targetShape] and `build` appends the nodes computing a scalar loss from the model's output and it.
 * Every op `build` emits needs a gradient rule, like any other part of the step.
 */
export interface GraphLoss {
  kind: "graph";
  /** Named in errors and in the step graph's name. */
  name: string;
  /** One sample's target shape (the labels input is [batch, ...targetShape]). */
  targetShape: number[];
  build(g: Graph, output: string, targets: string): string;
}

export interface StepOptions {
  /** Default: softmax cross-entropy (mean) on int64 class labels. */
  loss?: LossSpec;
  optimizer: OptimizerSpec;
}

/** A value the step carries from one run to the next: a parameter, an optimizer state or a BN buffer. */
export interface CarriedValue {
  name: string;
  /** The output holding its value after the step. */
  next: string;
  kind: "param" | "optimizer" | "buffer";
  init: Tensor;
}

/**
 * ONE ONNX graph for a whole training step: forward (training mode), loss, backward, optimizer update and BN
 * running statistics. Inputs: the carried values, `x`, `labels`, `lr` and `step` (float scalars, step counted
 * from 1). Outputs: `loss`, `correct` (classification only) and the next value of everything carried.
 */
export interface TrainingStep {
  model: Model;
  net: NetModel;
  carried: CarriedValue[];
  x: string;
  labels: string;
  lr: string;
  step: string;
  loss: string;
  correct?: string;
  lossSpec: LossSpec;
}

export class StepError extends Error {
  override name = "StepError";
}

interface ForwardBackward {
  g: Graph;
  loss: string;
  correct?: string;
  grads: Map<string, string>;
}

/** The training-mode forward pass, the loss and the backward pass, with parameters and buffers as inputs. */
function forwardBackward(net: NetModel, lossSpec: LossSpec, name: string): ForwardBackward {
  const g = cloneGraph(net.train);
  g.name = `${net.name}-${name}`;
  g.outputs = [];
  for (const p of [...net.params, ...net.buffers]) {
    const t = g.initializers.get(p)!;
    g.initializers.delete(p);
    g.inputs.push({ name: p, dtype: t.dtype, shape: [...t.dims] });
  }
  const classes = g.valueInfo.get(net.output)?.shape?.[1] ?? null;
  if (lossSpec.kind === "cross-entropy") g.inputs.push({ name: LABELS, dtype: "int64", shape: ["batch"] });
  else if (lossSpec.kind === "graph")
    g.inputs.push({ name: LABELS, dtype: "float32", shape: ["batch", ...lossSpec.targetShape] });
  else g.inputs.push({ name: LABELS, dtype: "float32", shape: ["batch", classes] });
  g.invalidate();

  const loss = g.op(
    "Identity",
    [appendLoss(g, lossSpec, net.output, LABELS)],
    {},
    { output: g.uniqueName("loss") },
  );
  let correct: string | undefined;
  if (lossSpec.kind === "cross-entropy") {
    const pred = g.op("ArgMax", [net.output], { axis: 1, keepdims: 0 });
    correct = countTrue(g, g.op("Equal", [pred, LABELS]), "correct");
  } else if (lossSpec.kind === "bce-with-logits") {
    const zero = g.constant("bce.zero", f32([], [0]));
    const half = g.constant("bce.half", f32([], [0.5]));
    correct = countTrue(
      g,
      g.op("Equal", [g.op("Greater", [net.output, zero]), g.op("Greater", [LABELS, half])]),
      "correct",
    );
  }
  inferShapes(g);
  const grads = appendBackward(g, loss, net.params);
  g.outputs.push({ name: loss, dtype: "float32", shape: [] });
  if (correct) g.outputs.push({ name: correct, dtype: "float32", shape: [] });
  return { g, loss, correct, grads };
}

const LABELS = "labels";

/** A parameter's next value kept positive, max(|p|, least), if its rule says so (see ParamRule). */
function bounded(g: Graph, param: string, next: string, least?: number): string {
  if (least === undefined) return next;
  const m = g.constant(g.uniqueName(`${param}.least`), f32([], [least]));
  const abs = g.op("Abs", [next], {}, { name: `${param}.abs` });
  return g.op("Max", [abs, m], {}, { name: `${param}.positive`, output: g.uniqueName(`${next}.positive`) });
}

export function buildTrainingStep(net: NetModel, opts: StepOptions): TrainingStep {
  const lossSpec = opts.loss ?? { kind: "cross-entropy" };
  const { g, loss, correct, grads } = forwardBackward(net, lossSpec, "train-step");
  g.inputs.push({ name: "lr", dtype: "float32", shape: [] }, { name: "step", dtype: "float32", shape: [] });
  const opt = appendOptimizer(
    g,
    opts.optimizer,
    net.params.map((p) => ({
      name: p,
      grad: grads.get(p)!,
      dims: net.train.initializers.get(p)!.dims,
      relativeTo: net.rules?.get(p)?.relativeTo,
    })),
    { lr: "lr", step: "step" },
  );
  const carried: CarriedValue[] = [];
  const out = (name: string, next: string, kind: CarriedValue["kind"], init: Tensor): void => {
    carried.push({ name, next, kind, init });
    g.outputs.push({ name: next, dtype: init.dtype, shape: [...init.dims] });
  };
  for (const p of net.params)
    out(
      p,
      bounded(g, p, opt.next.get(p)!, net.rules?.get(p)?.positive),
      "param",
      net.train.initializers.get(p)!,
    );
  for (const s of opt.state) out(s.name, opt.next.get(s.name)!, "optimizer", s.init);
  for (const b of net.buffers) out(b, net.updates.get(b)!, "buffer", net.train.initializers.get(b)!);
  return {
    model: modelOf(g),
    net,
    carried,
    x: net.input,
    labels: LABELS,
    lr: "lr",
    step: "step",
    loss,
    correct,
    lossSpec,
  };
}

/**
 * A graph computing, for one batch in training mode, the loss, the gradient of every parameter (outputs
 * `<param>.grad`) and the BN buffers' next values (`<buffer>.next`), with parameters and buffers as inputs.
 */
export function buildGradientGraph(
  net: NetModel,
  opts: { loss?: LossSpec } = {},
): { model: Model; loss: string; grads: Map<string, string> } {
  const { g, loss, grads } = forwardBackward(net, opts.loss ?? { kind: "cross-entropy" }, "gradients");
  const named = new Map<string, string>();
  for (const p of net.params) {
    const o = g.op("Identity", [grads.get(p)!], {}, { output: g.uniqueName(`${p}.grad`) });
    named.set(p, o);
    g.outputs.push({ name: o, dtype: "float32", shape: [...net.train.initializers.get(p)!.dims] });
  }
  for (const b of net.buffers) g.outputs.push({ name: net.updates.get(b)! });
  return { model: modelOf(g), loss, grads: named };
}

function appendLoss(g: Graph, spec: LossSpec, logits: string, labels: string): string {
  switch (spec.kind) {
    case "cross-entropy":
      return crossEntropyLoss(g, logits, labels, { labelSmoothing: spec.labelSmoothing ?? 0 });
    case "mse":
      return mseLoss(g, logits, labels);
    case "bce-with-logits":
      return bceWithLogitsLoss(g, logits, labels);
    case "graph":
      return spec.build(g, logits, labels);
  }
}

function countTrue(g: Graph, bools: string, name: string): string {
  return g.op(
    "ReduceSum",
    [g.op("Cast", [bools], { to: 1 })],
    { keepdims: 0 },
    { output: g.uniqueName(name) },
  );
}

export interface StepResult {
  loss: number;
  /** Correctly classified samples of the batch (classification losses). */
  correct?: number;
}

/**
 * Runs a training step graph again and again, keeping parameters, optimizer state and BN buffers between steps:
 * the output tensors of step k are fed as the inputs of step k+1 (ORT reads the JS memory of inputs in place; the
 * Node binding copies each output once into a fresh ArrayBuffer, which is what the next step reads).
 */
export class TrainingRunner {
  private state = new Map<string, ort.Tensor>();
  private outputNames: string[];
  /** Optimizer steps taken. */
  steps = 0;

  private constructor(
    readonly step: TrainingStep,
    private readonly session: ort.InferenceSession,
  ) {
    for (const c of step.carried) this.state.set(c.name, toOrt(copyTensor(c.init)));
    this.outputNames = [...session.outputNames];
  }

  static async create(step: TrainingStep, opts: SessionOptions = {}): Promise<TrainingRunner> {
    return new TrainingRunner(step, await openSession(step.model, opts));
  }

  /** One optimizer step on a batch (x: [n, ...inputShape] float32; labels: n int64 or [n, classes] float32). */
  async run(x: Tensor | ort.Tensor, labels: Tensor | ort.Tensor, lr: number): Promise<StepResult> {
    const xt = asOrt(x);
    const lt = asOrt(labels);
    this.check(xt, lt);
    const feeds: Record<string, ort.Tensor> = {
      [this.step.x]: xt,
      [this.step.labels]: lt,
      [this.step.lr]: new ort.Tensor("float32", Float32Array.of(lr), []),
      [this.step.step]: new ort.Tensor("float32", Float32Array.of(this.steps + 1), []),
    };
    for (const [k, v] of this.state) feeds[k] = v;
    const out = await this.session.run(feeds, this.outputNames);
    for (const c of this.step.carried) this.state.set(c.name, out[c.next]!);
    this.steps++;
    const loss = (out[this.step.loss]!.data as Float32Array)[0]!;
    return this.step.correct
      ? { loss, correct: (out[this.step.correct]!.data as Float32Array)[0]! }
      : { loss };
  }

  /** Current values by name (parameters, `<param>.<optimizer state>`, buffers), sharing the runner's memory. */
  values(kind?: CarriedValue["kind"]): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const c of this.step.carried)
      if (!kind || c.kind === kind) m.set(c.name, fromOrt(this.state.get(c.name)!));
    return m;
  }

  /** Parameters and buffers as ORT tensors, to feed an EvalRunner without copying. */
  weights(): Map<string, ort.Tensor> {
    const m = new Map<string, ort.Tensor>();
    for (const c of this.step.carried) if (c.kind !== "optimizer") m.set(c.name, this.state.get(c.name)!);
    return m;
  }

  /** Replace carried values (e.g. from a checkpoint); names and shapes must match. */
  load(values: Map<string, Tensor>, steps?: number): void {
    const byName = new Map(this.step.carried.map((c) => [c.name, c]));
    for (const [k, t] of values) {
      const c = byName.get(k);
      if (!c) throw new StepError(`the training step carries no value named '${k}'`);
      if (c.init.dtype !== t.dtype || c.init.dims.join(",") !== t.dims.join(",")) {
        throw new StepError(`'${k}' is ${c.init.dtype}[${c.init.dims}], got ${t.dtype}[${t.dims}]`);
      }
      this.state.set(k, toOrt(copyTensor(t)));
    }
    if (steps !== undefined) this.steps = steps;
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private check(x: ort.Tensor, labels: ort.Tensor): void {
    const shape = this.step.net.inputShape;
    if (
      x.type !== "float32" ||
      x.dims.length !== shape.length + 1 ||
      shape.some((d, i) => x.dims[i + 1] !== d)
    ) {
      throw new StepError(
        `input '${this.step.x}' must be float32 [batch, ${shape}], got ${x.type} [${x.dims}]`,
      );
    }
    const n = x.dims[0]!;
    const wantLabels = this.step.lossSpec.kind === "cross-entropy" ? "int64" : "float32";
    const spec = this.step.lossSpec;
    const tail = spec.kind === "graph" ? spec.targetShape : null;
    if (
      labels.type !== wantLabels ||
      labels.dims[0] !== n ||
      (tail && (labels.dims.length !== tail.length + 1 || tail.some((d, i) => labels.dims[i + 1] !== d)))
    ) {
      if (tail)
        throw new StepError(
          `'${this.step.labels}' of loss '${(spec as GraphLoss).name}' must be float32 [${n}, ${tail}], got ${labels.type} [${labels.dims}]`,
        );
      throw new StepError(
        `'${this.step.labels}' must be ${wantLabels} with ${n} rows (the batch), got ${labels.type} [${labels.dims}]`,
      );
    }
  }
}

/**
 * Runs a model's evaluation graph with given weights (e.g. a TrainingRunner's current ones). Parameters and
 * buffers are plain graph inputs (the Node binding ignores feeds for initializers, even overridable ones); those
 * not given are fed the model's current values.
 */
export class EvalRunner {
  private readonly names: string[];

  private constructor(
    readonly net: NetModel,
    private readonly session: ort.InferenceSession,
  ) {
    this.names = session.inputNames.filter((n) => n !== net.input);
  }

  static async create(net: NetModel, opts: SessionOptions = {}): Promise<EvalRunner> {
    const g = cloneGraph(net.eval);
    for (const name of [...net.params, ...net.buffers]) {
      const t = g.initializers.get(name);
      if (!t) continue;
      g.initializers.delete(name);
      g.inputs.push({ name, dtype: t.dtype, shape: [...t.dims] });
    }
    return new EvalRunner(net, await openSession(modelOf(g), opts));
  }

  /** Logits for a batch, and the number of correct predictions when int64 labels are given. */
  async run(
    x: Tensor | ort.Tensor,
    opts: { labels?: Tensor; weights?: Map<string, ort.Tensor | Tensor> } = {},
  ): Promise<{ logits: Tensor; correct?: number }> {
    const feeds: Record<string, ort.Tensor> = { [this.net.input]: asOrt(x) };
    for (const k of this.names) feeds[k] = asOrt(opts.weights?.get(k) ?? this.net.eval.initializers.get(k)!);
    const out = await this.session.run(feeds, [this.net.output]);
    const logits = fromOrt(out[this.net.output]!);
    if (!opts.labels) return { logits };
    return { logits, correct: countCorrect(logits, opts.labels) };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Rows of [n, classes] logits whose arg-max equals the int64 label. */
export function countCorrect(logits: Tensor, labels: Tensor): number {
  const [n, k] = logits.dims as [number, number];
  const d = logits.data as Float32Array;
  const l = labels.data as BigInt64Array;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    if (BigInt(argmax(d, i * k, k)) === l[i]) correct++;
  }
  return correct;
}

function asOrt(t: Tensor | ort.Tensor): ort.Tensor {
  return "dtype" in t ? toOrt(t) : t;
}

function copyTensor(t: Tensor): Tensor {
  const data = (t.data as Float32Array).slice();
  return { dtype: t.dtype, dims: [...t.dims], data };
}
