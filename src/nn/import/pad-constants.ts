/**
 * A Concat of batch-carrying values with uniform constants (TFLite's channel padding: tf2onnx exports `tf.pad` on the
 * channel axis as a Concat with a ConstantOfShape of zeros shaped [1, C', H, W], which constant folding turns into an
 * initializer) pins the batch: the constant has the file's batch rows. The rewrite expresses the same values as a
 * `Pad` (mode constant, value = the constant's one value) of the batch-carrying input along the Concat axis, which
 * takes any batch.
 *
 * Why Pad, and not a constant broadcast from the runtime shape (Shape → Concat → ConstantOfShape/Expand) or a
 * zeroed slice of the input (Slice · 0): Pad is one node with constant pads, so (1) ORT's CPU Pad kernel writes the
 * output in one pass with no shape arithmetic at run time; (2) qat's autodiff already has its gradient rule (dX =
 * the middle slice of dY) and nothing flows into a constant; (3) the constant leaves the graph, so the importer cannot
 * mistake it for a trainable weight (a float initializer read by Concat would otherwise be trained); (4) Slice · 0
 * would turn an inf/NaN of the input into NaN padding and costs a multiply. This is the op TensorFlow itself ran.
 */
import type { Graph, Node } from "../../onnx/ir.js";
import { f32, i64, toNumbers } from "../../onnx/tensor.js";

/** One Concat rewritten: its constant inputs became pads of its batch-carrying inputs. */
export interface ConstantPadRewrite {
  node: string;
  /** The constant inputs that were replaced. */
  constants: string[];
  /** The Concat axis (non-negative). */
  axis: number;
  /** The value the constants held. */
  value: number;
}

/** The one value every element of a float initializer holds, or undefined when they differ (or it is not float). */
function uniformValue(g: Graph, name: string): number | undefined {
  const t = g.initializers.get(name);
  if (!t || t.dtype !== "float32") return undefined;
  const v = toNumbers(t);
  if (v.length === 0) return undefined;
  const first = v[0]!;
  return v.every((x) => Object.is(x, first) || x === first) ? first : undefined;
}

/**
 * Whether `n` (a Concat on a non-batch axis) can be rewritten: every input either carries the batch or is a uniform
 * float initializer, and the constants feeding one Pad agree on their value. Returns why not, or undefined.
 */
export function padRewriteBlocker(g: Graph, n: Node, batched: boolean[]): string | undefined {
  for (const [k, i] of n.inputs.entries()) {
    if (batched[k] || !i) continue;
    if (!g.initializers.has(i)) return `input '${i}' is computed from constants, not a stored constant`;
    if (uniformValue(g, i) === undefined)
      return `its constant input '${i}' holds different values, so it is not padding`;
  }
  return planPads(g, n, batched).some((p) => p.conflict)
    ? "constants of different values pad the same value"
    : undefined;
}

interface PadPlan {
  /** Index of the batch-carrying input padded. */
  input: number;
  before: string[];
  after: string[];
  value: number;
  conflict: boolean;
}

/** Constants before a batch-carrying input pad its start; constants after the last one pad the last one's end. */
function planPads(g: Graph, n: Node, batched: boolean[]): PadPlan[] {
  const plans: PadPlan[] = [];
  let run: string[] = [];
  for (const [k, i] of n.inputs.entries()) {
    if (!batched[k]) {
      run.push(i);
      continue;
    }
    plans.push({ input: k, before: run, after: [], value: 0, conflict: false });
    run = [];
  }
  plans.at(-1)!.after = run;
  for (const p of plans) {
    const values = [...p.before, ...p.after].map((c) => uniformValue(g, c));
    p.value = values[0] ?? 0;
    p.conflict = values.some((v) => v !== p.value);
  }
  return plans;
}

/**
 * Rewrite `n` in place (check `padRewriteBlocker` first). `size(v)` is the length of value `v` along the axis,
 * `rank` the rank of the inputs. With one batch-carrying input the Concat itself becomes the Pad; otherwise Pads are
 * inserted before it. Returns the values that now carry the batch, and the report entry.
 */
export function rewriteConstantConcat(
  g: Graph,
  n: Node,
  batched: boolean[],
  axis: number,
  rank: number,
): { carriers: string[]; rewrite: ConstantPadRewrite } {
  const plans = planPads(g, n, batched);
  const constants = n.inputs.filter((_, k) => !batched[k]);
  const along = (names: string[]) => names.reduce((a, c) => a + g.initializers.get(c)!.dims[axis]!, 0);
  const padsOf = (p: PadPlan) => {
    const pads = new Array<number>(2 * rank).fill(0);
    pads[axis] = along(p.before);
    pads[axis + rank] = along(p.after);
    return g.constant(`${n.name}.pads`, i64([2 * rank], pads));
  };
  // Pad's default value is 0: leave the input out then, so no frozen scalar joins the model
  const padValue = (p: PadPlan) =>
    p.value === 0 ? [] : [g.constant(`${n.name}.pad_value`, f32([], [p.value]))];
  const carriers: string[] = [];
  if (plans.length === 1) {
    const p = plans[0]!;
    n.inputs = [n.inputs[p.input]!, padsOf(p), ...padValue(p)];
    n.opType = "Pad";
    n.attrs = { mode: { type: "string", value: "constant" } };
  } else {
    const at = g.nodes.indexOf(n);
    const inputs: string[] = [];
    for (const p of plans) {
      const x = n.inputs[p.input]!;
      if (p.before.length === 0 && p.after.length === 0) {
        inputs.push(x);
        continue;
      }
      const padded = g.op(
        "Pad",
        [x, padsOf(p), ...padValue(p)],
        { mode: "constant" },
        { name: `${n.name}.pad` },
      );
      // keep the graph in topological order: the Pad goes right before the Concat
      g.nodes.splice(at, 0, g.nodes.pop()!);
      carriers.push(padded);
      inputs.push(padded);
    }
    n.inputs = inputs;
  }
  for (const c of new Set(constants))
    if (!g.nodes.some((m) => m.inputs.includes(c))) g.initializers.delete(c);
  g.invalidate();
  const value = plans.find((p) => p.before.length + p.after.length > 0)?.value ?? 0;
  return { carriers, rewrite: { node: n.name, constants, axis, value } };
}
