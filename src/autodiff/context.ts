import { type DType, isFloat } from "../onnx/dtype.js";
import { type Attr, type AttrInput, type Dim, type Graph, getAttr, type Node } from "../onnx/ir.js";
import { type Tensor, tensor, toNumbers } from "../onnx/tensor.js";
import { AutodiffError } from "./errors.js";
import type { StaticInfo } from "./shapes.js";

/**
 * What a gradient rule sees of its node, and the helpers it builds backward nodes with. Every node a rule emits
 * is appended to the graph under a name derived from the forward node's, so a backward graph reads like the
 * forward one.
 */
export class GradContext {
  constructor(
    readonly g: Graph,
    readonly node: Node,
    readonly info: StaticInfo,
    private readonly outGrads: (string | undefined)[],
    private readonly wanted: boolean[],
  ) {}

  /** The gradient flowing into output i (undefined when none reaches it). */
  dy(i = 0): string | undefined {
    return this.outGrads[i];
  }

  /** Whether the walker needs the gradient of input i (it depends on a `wrt` and is differentiable). */
  needs(i: number): boolean {
    return this.wanted[i] ?? false;
  }

  /** Name of input i ("" when absent). */
  x(i = 0): string {
    return this.node.inputs[i] ?? "";
  }

  /**
   * Name of output i. When the forward node does not emit that (optional) output yet, it is added, e.g. a
   * MaxPool's Indices or a Dropout's mask, so the backward pass can read it.
   */
  y(i = 0): string {
    const n = this.node;
    while (n.outputs.length <= i) n.outputs.push("");
    if (!n.outputs[i]) {
      n.outputs[i] = this.g.uniqueName(`${n.name}_out${i}`);
    }
    return n.outputs[i]!;
  }

  /** Raise an AutodiffError naming this node and its op type. */
  fail(message: string): never {
    throw new AutodiffError(message, { node: this.node.name, opType: this.node.opType });
  }

  // ------------------------------------------------------------------ what is known statically

  shape(name: string): Dim[] | undefined {
    return this.info.shape(name);
  }

  /** The shape of a value when every dim is a number. */
  staticShape(name: string): number[] | undefined {
    const s = this.info.shape(name);
    return s?.every((d) => typeof d === "number") ? (s as number[]) : undefined;
  }

  rank(name: string): number | undefined {
    return this.info.shape(name)?.length;
  }

  /** The rank of a value, or an error when it is not known statically. */
  needRank(name: string): number {
    const r = this.rank(name);
    if (r === undefined)
      this.fail(`the rank of '${name}' is unknown; run shape inference on the graph first`);
    return r;
  }

  /** Static dims of a value, or an error saying which value needs them. */
  needShape(name: string, what = "its gradient"): number[] {
    const s = this.staticShape(name);
    if (!s)
      this.fail(`${what} needs the static shape of '${name}', which is not known; run shape inference first`);
    return s;
  }

  dtype(name: string): DType {
    return this.info.dtype(name) ?? "float32";
  }

  /** Whether a value is floating point (integer and bool values carry no gradient). */
  isFloat(name: string): boolean {
    const d = this.info.dtype(name);
    return d === undefined || isFloat(d);
  }

  /** The constant behind input i (an initializer or a Constant node's value), if it is one. */
  constant(i: number): Tensor | undefined {
    const name = this.x(i);
    return name ? this.info.constant(name) : undefined;
  }

  /** The values of a constant input as numbers. */
  constNumbers(i: number): number[] | undefined {
    const t = this.constant(i);
    return t ? toNumbers(t) : undefined;
  }

  int(name: string, d: number): number {
    return this.wrap(() => getAttr(this.node, name, "int")?.value ?? d);
  }

  float(name: string, d: number): number {
    return this.wrap(() => {
      const a = this.node.attrs[name];
      if (a?.type === "int") return a.value;
      return getAttr(this.node, name, "float")?.value ?? d;
    });
  }

  string(name: string, d: string): string {
    return this.wrap(() => getAttr(this.node, name, "string")?.value ?? d);
  }

  ints(name: string): number[] | undefined {
    return this.wrap(() => getAttr(this.node, name, "ints")?.value);
  }

  private wrap<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      return this.fail((e as Error).message);
    }
  }

  // ------------------------------------------------------------------ emitting nodes

  /** Append a backward node with one output; the output's element type follows `dtype` (default: first input's). */
  op(opType: string, inputs: string[], attrs: Record<string, Attr | AttrInput> = {}, dtype?: DType): string {
    const out = this.g.op(opType, inputs, attrs, { name: `${this.node.name}_grad_${opType}` });
    const d = dtype ?? this.info.dtype(opType === "Where" ? inputs[1]! : inputs[0]!);
    if (d) this.info.note(out, d);
    return out;
  }

  /** A scalar constant of the element type of `like`. */
  scalar(value: number, like: string): string {
    const dtype = this.dtype(like);
    const name = this.g.constant(`${this.node.name}_grad_c`, tensor(dtype, [], [value]));
    this.info.note(name, dtype, []);
    return name;
  }

  /** A float constant of the element type of `like` with the given dims. */
  floats(dims: number[], values: ArrayLike<number>, like: string): string {
    const dtype = this.dtype(like);
    const name = this.g.constant(`${this.node.name}_grad_c`, tensor(dtype, dims, values));
    this.info.note(name, dtype, dims);
    return name;
  }

  /** A 1-D int64 constant (axes, shapes, pads, starts). */
  int64s(values: number[]): string {
    const name = this.g.constant(`${this.node.name}_grad_i`, tensor("int64", [values.length], values));
    this.info.note(name, "int64", [values.length]);
    return name;
  }

  /**
   * A shape tensor for `name`: a constant when its dims are static (one unknown dim becomes -1, fine for
   * Reshape), else a Shape node read at run time.
   */
  shapeFor(name: string, forReshape = true): string {
    const s = this.shape(name);
    if (s) {
      const unknown = s.filter((d) => typeof d !== "number").length;
      if (unknown === 0 || (forReshape && unknown === 1))
        return this.int64s(s.map((d) => (typeof d === "number" ? d : -1)));
    }
    return this.op("Shape", [name], {}, "int64");
  }

  /** Reshape a gradient to the shape of `like`. */
  reshapeLike(grad: string, like: string): string {
    return this.op("Reshape", [grad, this.shapeFor(like)]);
  }

  /** ReduceSum over axes (opset 13+ takes them as an input). */
  reduceSum(x: string, axes: number[], keepdims: boolean): string {
    return this.op("ReduceSum", [x, this.int64s(axes)], { keepdims: keepdims ? 1 : 0 });
  }

  /** Zeros shaped like a value, of its element type. */
  zerosLike(name: string): string {
    const s = this.staticShape(name);
    if (s) return this.floats(s, new Float64Array(s.reduce((a, b) => a * b, 1)), name);
    return this.op(
      "ConstantOfShape",
      [this.op("Shape", [name], {}, "int64")],
      {
        value: { type: "tensor", value: tensor(this.dtype(name), [1], [0]) },
      },
      this.dtype(name),
    );
  }

  /**
   * Sum a gradient shaped like `out` (the broadcast result) back to the shape of input `x`: over the leading axes
   * `x` lacks and the axes where `x` has size 1. Axes come from the static shapes; when some dims are unknown the
   * axes are found at run time from the two Shape tensors.
   */
  reduceTo(grad: string, x: string, out: string): string {
    const xs = this.shape(x);
    const os = this.shape(out);
    if (xs && os) {
      const lead = os.length - xs.length;
      if (lead < 0) this.fail(`'${x}' has higher rank than the result '${out}'`);
      let staticOk = true;
      const inner: number[] = [];
      xs.forEach((d, i) => {
        const o = os[i + lead];
        if (d === 1 && o !== 1) inner.push(i + lead);
        else if (d === null || (typeof d === "string" && d !== o)) staticOk = false;
      });
      if (staticOk) {
        const axes = [...Array.from({ length: lead }, (_, i) => i), ...inner];
        if (axes.length === 0) return grad;
        if (inner.length === 0) return this.reduceSum(grad, axes, false);
        if (lead === 0) return this.reduceSum(grad, axes, true);
        const summed = this.reduceSum(grad, axes, false);
        return this.op("Unsqueeze", [summed, this.int64s(inner.map((a) => a - lead))]);
      }
      // ranks known, sizes not: compare the two shapes at run time
      const sx = this.op("Shape", [x], {}, "int64");
      const sy = this.op("Shape", [grad], {}, "int64");
      const padded =
        lead > 0 ? this.op("Concat", [this.int64s(new Array(lead).fill(1)), sx], { axis: 0 }, "int64") : sx;
      const differ = this.op("Not", [this.op("Equal", [padded, sy], {}, "bool")], {}, "bool");
      const axes = this.op(
        "Reshape",
        [this.op("NonZero", [differ], {}, "int64"), this.int64s([-1])],
        {},
        "int64",
      );
      const summed = this.op("ReduceSum", [grad, axes], { keepdims: 1, noop_with_empty_axes: 1 });
      return this.op("Reshape", [summed, sx]);
    }
    return this.fail(`broadcasting '${x}' against '${out}' needs their ranks; run shape inference first`);
  }
}
