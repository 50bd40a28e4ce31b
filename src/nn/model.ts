import type { Graph } from "../onnx/ir.js";
import type { Tensor } from "../onnx/tensor.js";

/**
 * A network as two ONNX graphs sharing parameter names: `train` (BatchNormalization in training mode, Dropout
 * active, running-statistics updates as extra outputs) and `eval` (BatchNormalization in inference mode, no
 * dropout). Parameters and buffers are initializers of both graphs (num_batches_tracked of the train graph only),
 * named as PyTorch's state_dict keys.
 */
export interface NetModel {
  name: string;
  train: Graph;
  eval: Graph;
  /** The image input (NCHW float32, symbolic batch dim "batch"). */
  input: string;
  /** One sample's shape, e.g. [1, 28, 28]. */
  inputShape: number[];
  /** The logits output, [batch, classes]. */
  output: string;
  /** Trainable parameters in creation order (state_dict order). */
  params: string[];
  /** Non-trainable state: BN running statistics and num_batches_tracked. */
  buffers: string[];
  /** Buffer name → value of the train graph holding the buffer's value after one training forward pass. */
  updates: Map<string, string>;
  /** How some parameters are updated (learned quantization scales): see ParamRule. */
  rules?: Map<string, ParamRule>;
}

/** Update rules of a parameter beyond its optimizer's formula. */
export interface ParamRule {
  /**
   * Keep the parameter positive, at least this: the step takes max(|p|, positive). A learned quantization scale
   * pushed past zero is mirrored, not stuck at the bound: the forward with −s already equals the one with s (up to
   * int8's one-sided −128), so the mirror continues the same training, and a scale held near zero would zero a
   * whole channel.
   */
  positive?: number;
  /**
   * Adam/AdamW only: the step is multiplied elementwise by this tensor (the parameter's starting magnitude), so
   * the parameter moves relative to its size. Adam's steps are ~lr in absolute terms whatever the gradient; a
   * quantization scale of 0.003 moved by lr = 0.001 a step would collapse within a few steps.
   */
  relativeTo?: Tensor;
}

export class NnError extends Error {
  override name = "NnError";
  constructor(
    message: string,
    /** The layer (parameter prefix or node name) the problem is in. */
    readonly layer?: string,
  ) {
    super(layer ? `layer '${layer}': ${message}` : message);
  }
}

/** Current values of parameters and buffers, by state_dict name (the tensors the graphs hold). */
export function stateDict(model: NetModel): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const k of [...model.params, ...model.buffers]) out.set(k, model.train.initializers.get(k)!);
  return out;
}

/** Replace parameter/buffer values in both graphs (e.g. after training). Unknown names and shape changes throw. */
export function loadStateDict(model: NetModel, values: Map<string, Tensor> | Record<string, Tensor>): void {
  const entries = values instanceof Map ? [...values] : Object.entries(values);
  const known = new Set([...model.params, ...model.buffers]);
  for (const [k, t] of entries) {
    if (!known.has(k)) throw new NnError(`no parameter or buffer named '${k}' in model '${model.name}'`);
    const old = model.train.initializers.get(k)!;
    if (old.dims.join(",") !== t.dims.join(",") || old.dtype !== t.dtype) {
      throw new NnError(`'${k}' is ${old.dtype}[${old.dims}], got ${t.dtype}[${t.dims}]`, k);
    }
    model.train.initializers.set(k, t);
    if (model.eval.initializers.has(k)) model.eval.initializers.set(k, t);
  }
}
