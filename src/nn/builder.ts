import { type Attr, type AttrInput, attr, Graph } from "../onnx/ir.js";
import { f32, i64, type Tensor, tensor } from "../onnx/tensor.js";
import { Rng } from "../util/rng.js";
import { biasUniform, filled, kaimingUniform } from "./init.js";
import { type NetModel, NnError } from "./model.js";

type Shape = number[];
type Attrs = Record<string, Attr | AttrInput>;

export interface Conv2dOptions {
  name: string;
  out: number;
  kernel: number;
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

export interface PoolOptions {
  kernel: number;
  /** Default: the kernel size (as PyTorch). */
  stride?: number;
  padding?: number;
  name?: string;
}

/**
 * The functional network builder: each call appends a layer to the training and the evaluation graph at once and
 * returns the output value's name. Parameters get PyTorch's default initialisation from a generator seeded by
 * (seed, parameter prefix), so a layer's initial weights do not depend on the layers built before it.
 */
export class NetBuilder {
  readonly train = new Graph();
  readonly eval = new Graph();
  readonly input = "x";
  private readonly rng: Rng;
  private readonly shapes = new Map<string, Shape>();
  /** Train-graph value → eval-graph value where they differ (Dropout is an identity in eval). */
  private readonly evalName = new Map<string, string>();
  private readonly params: string[] = [];
  private readonly buffers: string[] = [];
  private readonly updates = new Map<string, string>();
  private dropoutCount = 0;

  constructor(
    readonly name: string,
    readonly inputShape: number[],
    opts: { seed?: number } = {},
  ) {
    this.rng = new Rng(opts.seed ?? 0);
    for (const g of [this.train, this.eval]) {
      g.name = name;
      g.inputs.push({ name: this.input, dtype: "float32", shape: ["batch", ...inputShape] });
    }
    this.shapes.set(this.input, [...inputShape]);
  }

  /** One sample's shape of a value built so far (no batch dim). */
  shape(v: string): number[] {
    const s = this.shapes.get(v);
    if (!s) throw new NnError(`unknown value '${v}' (not built by this builder)`);
    return [...s];
  }

  conv2d(x: string, o: Conv2dOptions): string {
    const [c, h, w] = this.spatial(x, o.name);
    const { stride = 1, padding = 0, dilation = 1, groups = 1, bias = true } = o;
    if (c % groups !== 0 || o.out % groups !== 0) {
      throw new NnError(`groups=${groups} must divide in_channels=${c} and out_channels=${o.out}`, o.name);
    }
    const wDims = [o.out, c / groups, o.kernel, o.kernel];
    const rng = this.rng.fork(o.name);
    const weight = this.param(`${o.name}.weight`, kaimingUniform(rng, wDims));
    const inputs = [x, weight];
    if (bias) inputs.push(this.param(`${o.name}.bias`, biasUniform(rng, o.out, wDims)));
    const attrs: Attrs = {
      kernel_shape: [o.kernel, o.kernel],
      strides: [stride, stride],
      pads: [padding, padding, padding, padding],
      dilations: [dilation, dilation],
    };
    if (groups !== 1) attrs.group = groups;
    const out = [
      o.out,
      convOut(h, o.kernel, stride, padding, dilation),
      convOut(w, o.kernel, stride, padding, dilation),
    ];
    if (out[1]! <= 0 || out[2]! <= 0)
      throw new NnError(`input ${h}×${w} is too small for kernel ${o.kernel}`, o.name);
    return this.both("Conv", inputs, attrs, out, o.name);
  }

  /** nn.Linear as Gemm(x, W, b, transB=1): W is [out, in] as in PyTorch. The input must be [batch, in]. */
  linear(x: string, o: { name: string; out: number; bias?: boolean }): string {
    const s = this.shape(x);
    if (s.length !== 1)
      throw new NnError(
        `Linear needs a flat input [batch, features], got [batch, ${s}]: add flatten()`,
        o.name,
      );
    const wDims = [o.out, s[0]!];
    const rng = this.rng.fork(o.name);
    const inputs = [x, this.param(`${o.name}.weight`, kaimingUniform(rng, wDims))];
    if (o.bias ?? true) inputs.push(this.param(`${o.name}.bias`, biasUniform(rng, o.out, wDims)));
    return this.both("Gemm", inputs, { transB: 1 }, [o.out], o.name);
  }

  /**
   * nn.BatchNorm2d. Training graph: BatchNormalization training_mode=1 (batch statistics), and the running
   * statistics updated with PyTorch's rule: r ← (1−m)·r + m·batch, the variance unbiased by n/(n−1).
   * Evaluation graph: inference-mode BatchNormalization on the running statistics.
   */
  batchNorm2d(x: string, o: { name: string; eps?: number; momentum?: number }): string {
    const s = this.shape(x);
    if (s.length !== 3) throw new NnError(`BatchNorm2d needs an NCHW input, got [batch, ${s}]`, o.name);
    const c = s[0]!;
    const eps = o.eps ?? 1e-5;
    const m = o.momentum ?? 0.1;
    const weight = this.param(`${o.name}.weight`, filled([c], 1));
    const bias = this.param(`${o.name}.bias`, filled([c], 0));
    const rm = this.buffer(`${o.name}.running_mean`, filled([c], 0));
    const rv = this.buffer(`${o.name}.running_var`, filled([c], 1));
    const nbt = this.buffer(`${o.name}.num_batches_tracked`, i64([], [0]), false);
    const inputs = [x, weight, bias, rm, rv];

    // Training mode normalises with the batch's statistics. ORT's kernel writes its running-statistics outputs in
    // the memory of its mean/var inputs, which the update below still reads; ONNX momentum 1 makes those outputs
    // equal to the inputs, so the write changes nothing. The batch mean and biased variance are computed here as
    // the BN gradient rule computes them (ORT's common-subexpression elimination can share them).
    const t = this.train;
    const [y] = t.add(
      "BatchNormalization",
      inputs,
      { epsilon: attr.float(eps), momentum: attr.float(1), training_mode: 1 },
      { name: o.name, outputs: 3 },
    );
    this.eval.add(
      "BatchNormalization",
      inputs,
      { epsilon: attr.float(eps) },
      { name: o.name, outputs: [y!] },
    );
    this.setShape(y!, s);
    const axes = { axes: [0, 2, 3], keepdims: 1 };
    const mu = t.op("ReduceMean", [x], axes);
    const centred = t.op("Sub", [x, mu]);
    const varB4 = t.op("ReduceMean", [t.op("Mul", [centred, centred])], axes);
    const flat = t.constant(`${o.name}.stat_shape`, i64([1], [c]));
    const mean = t.op("Reshape", [mu, flat]);
    const varB = t.op("Reshape", [varB4, flat]);

    const k = (base: string, v: number): string => t.constant(`${o.name}.${base}`, f32([], [v]));
    const count = t.op("Div", [t.op("Cast", [t.op("Size", [x])], { to: 1 }), k("channels", c)]);
    const unbias = t.op("Div", [count, t.op("Sub", [count, k("one", 1)])]);
    const keep = k("keep", 1 - m);
    const mom = k("momentum", m);
    const mix = (old: string, batch: string, out: string): string =>
      t.op("Add", [t.op("Mul", [old, keep]), t.op("Mul", [batch, mom])], {}, { output: t.uniqueName(out) });
    this.updates.set(rm, mix(rm, mean!, `${rm}.next`));
    this.updates.set(rv, mix(rv, t.op("Mul", [varB!, unbias]), `${rv}.next`));
    const one = t.constant(`${o.name}.nbt_one`, i64([], [1]));
    this.updates.set(nbt, t.op("Add", [nbt, one], {}, { output: t.uniqueName(`${nbt}.next`) }));
    return y!;
  }

  relu(x: string, name?: string): string {
    return this.both("Relu", [x], {}, this.shape(x), name);
  }
  leakyRelu(x: string, slope = 0.01, name?: string): string {
    return this.both("LeakyRelu", [x], { alpha: attr.float(slope) }, this.shape(x), name);
  }
  /** nn.ReLU6 as Clip(x, 0, 6). */
  relu6(x: string, name?: string): string {
    const lo = this.shared("relu6.min", f32([], [0]));
    const hi = this.shared("relu6.max", f32([], [6]));
    return this.both("Clip", [x, lo, hi], {}, this.shape(x), name);
  }
  hardSwish(x: string, name?: string): string {
    return this.both("HardSwish", [x], {}, this.shape(x), name);
  }
  sigmoid(x: string, name?: string): string {
    return this.both("Sigmoid", [x], {}, this.shape(x), name);
  }
  tanh(x: string, name?: string): string {
    return this.both("Tanh", [x], {}, this.shape(x), name);
  }

  maxPool2d(x: string, o: PoolOptions): string {
    return this.pool("MaxPool", x, o, {});
  }
  /** nn.AvgPool2d (count_include_pad=True, as PyTorch's default). */
  avgPool2d(x: string, o: PoolOptions): string {
    return this.pool("AveragePool", x, o, (o.padding ?? 0) > 0 ? { count_include_pad: 1 } : {});
  }
  /** [batch, C, H, W] → [batch, C, 1, 1]. */
  globalAvgPool(x: string, name?: string): string {
    const [c] = this.spatial(x, name ?? "GlobalAveragePool");
    return this.both("GlobalAveragePool", [x], {}, [c!, 1, 1], name);
  }
  /** [batch, ...] → [batch, product of the rest]. */
  flatten(x: string, name?: string): string {
    return this.both("Flatten", [x], { axis: 1 }, [this.shape(x).reduce((a, b) => a * b, 1)], name);
  }

  /** nn.Dropout(p): active in the training graph (seeded), absent from the evaluation graph. */
  dropout(x: string, p = 0.5, name?: string): string {
    if (!(p >= 0 && p < 1)) throw new NnError(`dropout probability must be in [0, 1), got ${p}`, name);
    const ratio = this.train.constant(`${name ?? "dropout"}.ratio`, f32([], [p]));
    const mode = this.train.constant(`${name ?? "dropout"}.training`, tensor("bool", [], [1]));
    const seed = this.rng.fork(`dropout:${this.dropoutCount++}`).nextU32() & 0x7fffffff;
    const [y] = this.train.add(
      "Dropout",
      [x, ratio, mode],
      { seed },
      { name: name ?? "Dropout", outputs: 2 },
    );
    this.setShape(y!, this.shape(x), false);
    this.evalName.set(y!, this.ev(x));
    return y!;
  }

  /** Elementwise sum (residual connection); shapes must be equal. */
  add(a: string, b: string, name?: string): string {
    const sa = this.shape(a);
    const sb = this.shape(b);
    if (sa.join(",") !== sb.join(",")) throw new NnError(`cannot add [${sa}] and [${sb}]`, name ?? "Add");
    return this.both("Add", [a, b], {}, sa, name);
  }

  /** nn.Upsample(scale_factor=s, mode="nearest"): each pixel copied into an s×s block (Resize, asymmetric/floor). */
  upsample(x: string, scale = 2, name?: string): string {
    const [c, h, w] = this.spatial(x, name ?? "Resize");
    const roi = this.shared("upsample.roi", f32([0], []));
    const scales = this.shared(`upsample.scales_${scale}`, f32([4], [1, 1, scale, scale]));
    const attrs: Attrs = {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    };
    return this.both("Resize", [x, roi, scales], attrs, [c!, h! * scale, w! * scale], name);
  }

  /** Concatenation along channels. */
  concat(xs: string[], name?: string): string {
    const shapes = xs.map((x) => this.shape(x));
    const rest = shapes[0]!.slice(1).join(",");
    if (shapes.some((s) => s.slice(1).join(",") !== rest)) {
      throw new NnError(
        `concat needs equal shapes but for channels, got ${shapes.map((s) => `[${s}]`).join(" ")}`,
        name ?? "Concat",
      );
    }
    const c = shapes.reduce((a, s) => a + s[0]!, 0);
    return this.both("Concat", xs, { axis: 1 }, [c, ...shapes[0]!.slice(1)], name);
  }

  /** Finish: `x` becomes the graphs' output "logits". */
  build(x: string, outputName = "logits"): NetModel {
    const s = this.shape(x);
    for (const [g, v] of [
      [this.train, x],
      [this.eval, this.ev(x)],
    ] as const) {
      g.nodes.push({
        name: g.uniqueName("output"),
        opType: "Identity",
        domain: "",
        inputs: [v],
        outputs: [outputName],
        attrs: {},
      });
      g.outputs.push({ name: outputName, dtype: "float32", shape: ["batch", ...s] });
    }
    for (const [buf, next] of this.updates) {
      this.train.outputs.push({
        name: next,
        dtype: this.train.initializers.get(buf)!.dtype,
        shape: this.train.initializers.get(buf)!.dims,
      });
    }
    return {
      name: this.name,
      train: this.train,
      eval: this.eval,
      input: this.input,
      inputShape: [...this.inputShape],
      output: outputName,
      params: [...this.params],
      buffers: [...this.buffers],
      updates: new Map(this.updates),
    };
  }

  // ------------------------------------------------------------------ internals

  private param(name: string, t: Tensor): string {
    this.state(name, t);
    this.params.push(name);
    return name;
  }

  private buffer(name: string, t: Tensor, inEval = true): string {
    this.state(name, t, inEval);
    this.buffers.push(name);
    return name;
  }

  private state(name: string, t: Tensor, inEval = true): void {
    if (this.train.initializers.has(name) || this.shapes.has(name)) {
      throw new NnError(
        `parameter '${name}' already exists: give each layer a distinct name`,
        name.split(".").slice(0, -1).join("."),
      );
    }
    if (this.train.uniqueName(name) !== name)
      throw new NnError(`'${name}' collides with a value of the graph`, name);
    this.train.initializers.set(name, t);
    if (inEval) this.eval.initializers.set(name, t);
  }

  /** A constant present in both graphs under one name, created once. */
  private shared(name: string, t: Tensor): string {
    if (this.train.initializers.has(name)) return name;
    const n = this.train.constant(name, t);
    this.eval.initializers.set(n, t);
    return n;
  }

  private ev(v: string): string {
    return this.evalName.get(v) ?? v;
  }

  /** A node emitted identically in both graphs. */
  private both(opType: string, inputs: string[], attrs: Attrs, shape: Shape, name?: string): string {
    for (const i of inputs) if (!this.shapes.has(i) && !this.train.initializers.has(i)) this.shape(i);
    const [y] = this.train.add(opType, inputs, attrs, { name: name ?? opType });
    const nodeName = this.train.nodes.at(-1)!.name;
    this.eval.add(
      opType,
      inputs.map((i) => this.ev(i)),
      attrs,
      { name: nodeName, outputs: [y!] },
    );
    this.setShape(y!, shape);
    return y!;
  }

  /** Record a value's per-sample shape, and its type and shape (with the batch dim) in the graphs' valueInfo. */
  private setShape(v: string, shape: Shape, inEval = true): void {
    this.shapes.set(v, shape);
    const info = { name: v, dtype: "float32" as const, shape: ["batch", ...shape] };
    this.train.valueInfo.set(v, info);
    if (inEval) this.eval.valueInfo.set(v, { ...info, shape: [...info.shape] });
  }

  private spatial(x: string, layer: string): Shape {
    const s = this.shape(x);
    if (s.length !== 3) throw new NnError(`needs an NCHW input, got [batch, ${s}]`, layer);
    return s;
  }

  private pool(op: string, x: string, o: PoolOptions, extra: Attrs): string {
    const [c, h, w] = this.spatial(x, o.name ?? op);
    const stride = o.stride ?? o.kernel;
    const p = o.padding ?? 0;
    const attrs: Attrs = {
      kernel_shape: [o.kernel, o.kernel],
      strides: [stride, stride],
      pads: [p, p, p, p],
      ...extra,
    };
    const out = [c!, convOut(h!, o.kernel, stride, p, 1), convOut(w!, o.kernel, stride, p, 1)];
    if (out[1]! <= 0 || out[2]! <= 0)
      throw new NnError(`input ${h}×${w} is too small for pooling ${o.kernel}`, o.name ?? op);
    return this.both(op, [x], attrs, out, o.name);
  }
}

function convOut(size: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;
}
