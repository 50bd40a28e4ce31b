import { type Conv2dOptions, NetBuilder, type PoolOptions } from "./builder.js";
import type { NetModel } from "./model.js";

/** A layer of a sequential model: builds itself under a name (its index, as nn.Sequential, unless given). */
export type Layer = (b: NetBuilder, x: string, name: string) => string;

export const Conv2d =
  (out: number, kernel: number, o: Omit<Conv2dOptions, "name" | "out" | "kernel"> = {}): Layer =>
  (b, x, name) =>
    b.conv2d(x, { ...o, name, out, kernel });
export const Linear =
  (out: number, o: { bias?: boolean } = {}): Layer =>
  (b, x, name) =>
    b.linear(x, { ...o, name, out });
export const BatchNorm2d =
  (o: { eps?: number; momentum?: number } = {}): Layer =>
  (b, x, name) =>
    b.batchNorm2d(x, { ...o, name });
export const ReLU = (): Layer => (b, x, name) => b.relu(x, name);
export const LeakyReLU =
  (slope = 0.01): Layer =>
  (b, x, name) =>
    b.leakyRelu(x, slope, name);
export const ReLU6 = (): Layer => (b, x, name) => b.relu6(x, name);
export const HardSwish = (): Layer => (b, x, name) => b.hardSwish(x, name);
export const Sigmoid = (): Layer => (b, x, name) => b.sigmoid(x, name);
export const Tanh = (): Layer => (b, x, name) => b.tanh(x, name);
export const MaxPool2d =
  (kernel: number, o: Omit<PoolOptions, "kernel" | "name"> = {}): Layer =>
  (b, x, name) =>
    b.maxPool2d(x, { ...o, kernel, name });
export const AvgPool2d =
  (kernel: number, o: Omit<PoolOptions, "kernel" | "name"> = {}): Layer =>
  (b, x, name) =>
    b.avgPool2d(x, { ...o, kernel, name });
export const GlobalAvgPool = (): Layer => (b, x, name) => b.globalAvgPool(x, name);
export const Flatten = (): Layer => (b, x, name) => b.flatten(x, name);
export const Dropout =
  (p = 0.5): Layer =>
  (b, x, name) =>
    b.dropout(x, p, name);

/** A layer with an explicit name, so its parameters are `<name>.weight` instead of `<index>.weight`. */
export const named =
  (name: string, layer: Layer): Layer =>
  (b, x) =>
    layer(b, x, name);

/** nn.Sequential: layers applied in order; parameter names are `<index>.weight` unless a layer is `named`. */
export function sequential(
  name: string,
  inputShape: number[],
  layers: Layer[],
  opts: { seed?: number } = {},
): NetModel {
  const b = new NetBuilder(name, inputShape, opts);
  let x = b.input;
  layers.forEach((layer, i) => {
    x = layer(b, x, String(i));
  });
  return b.build(x);
}
