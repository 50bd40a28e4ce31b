/**
 * The input convention of an imported model — what it expects to be fed, (stored value · scale − mean) / std per
 * channel — put in front of its graphs, on the channel axis of the model's own input layout. A model converted
 * from TFLite/Keras reads NHWC ([batch, H, W, C], channels last); PyTorch and CNTK models read NCHW. The input keeps
 * its name, layout and shape (the model stays a drop-in replacement); only the channel axis of the per-channel
 * constants follows the layout.
 */
import { type Graph, getAttr } from "../../onnx/ir.js";
import { f32 } from "../../onnx/tensor.js";
import type { NetModel } from "../model.js";
import { ImportError } from "./errors.js";

export type InputLayout = "nchw" | "nhwc";

export interface InputConvention {
  /** Multiply the stored values by this first (1/255 for a model trained on 0–1 pixels). Default 1. */
  scale?: number;
  /** Then subtract these per-channel means (one value or one per channel). Default 0. */
  mean?: number[];
  /** Then divide by these per-channel standard deviations. Default 1. */
  std?: number[];
  /** Where the channels are in the model's input. Default: read from the model (see `inputLayout`). */
  layout?: InputLayout;
}

/** Channel counts of images (grey, RGB, RGBA): what tells a channels-last input from a channels-first one. */
const IMAGE_CHANNELS = new Set([1, 3, 4]);

/**
 * The layout of a rank-4 image input: NHWC when every reader of the input is a Transpose to NCHW (perm [0,3,1,2],
 * what tf2onnx puts in front of the first Conv), or when its last dim is an image channel count and its second is
 * not; NCHW otherwise (and for any other rank, whose channel axis is the one after the batch).
 */
export function inputLayout(g: Graph, input: string, shape: readonly unknown[]): InputLayout {
  if (shape.length !== 4) return "nchw";
  const readers = g.nodes.filter((n) => n.inputs.includes(input));
  const toNchw = (perm: number[] | undefined) => perm?.join(",") === "0,3,1,2";
  if (
    readers.length > 0 &&
    readers.every((n) => n.opType === "Transpose" && toNchw(getAttr(n, "perm", "ints")?.value))
  )
    return "nhwc";
  const c1 = shape[1];
  const c3 = shape[3];
  return typeof c3 === "number" &&
    IMAGE_CHANNELS.has(c3) &&
    !(typeof c1 === "number" && IMAGE_CHANNELS.has(c1))
    ? "nhwc"
    : "nchw";
}

export interface AppliedConvention {
  scale: number;
  mean: number[];
  std: number[];
  layout: InputLayout;
}

/**
 * Put the convention in front of both graphs of `net` (its `inputShape` is one sample in the model's layout).
 * Returns what was applied (null when there is nothing to apply). Bad values throw an ImportError.
 */
export function applyInputConvention(
  net: NetModel,
  convention: InputConvention | undefined,
  layout: InputLayout,
  file: string | undefined,
): AppliedConvention | null {
  if (!convention || (convention.scale === undefined && !convention.mean && !convention.std)) return null;
  const scale = convention.scale ?? 1;
  if (!(scale > 0 && Number.isFinite(scale)))
    throw new ImportError(`input scale must be a positive number, got ${scale}`, { file });
  const mean = convention.mean ?? [0];
  const std = convention.std ?? [1];
  // one sample: channels first in NCHW, last in NHWC
  const channelAxis = layout === "nhwc" ? net.inputShape.length - 1 : 0;
  const channels = net.inputShape[channelAxis] ?? 1;
  for (const [what, v] of [
    ["mean", mean],
    ["std", std],
  ] as const) {
    if (v.length !== 1 && v.length !== channels) {
      throw new ImportError(
        `input ${what} has ${v.length} values but input '${net.input}' has ${channels} channels (${layout.toUpperCase()})`,
        { file },
      );
    }
  }
  if (std.some((s) => !(s > 0) || !Number.isFinite(s)))
    throw new ImportError(`input std values must be positive, got [${std}]`, { file });
  if (mean.some((m) => !Number.isFinite(m)))
    throw new ImportError(`input mean values must be finite numbers, got [${mean}]`, { file });
  // (x·scale − mean)/std = (x − mean/scale) · (scale/std), with the per-channel values on the channel axis
  const dims = net.inputShape.map((_, a) => (a === channelAxis ? Math.max(mean.length, std.length) : 1));
  const size = dims[channelAxis] ?? 1;
  const per = (v: number[]) => Array.from({ length: size }, (_, c) => v[v.length === 1 ? 0 : c]!);
  const shift = per(mean).map((m) => m / scale);
  const gain = per(std).map((s) => scale / s);
  for (const g of [net.train, net.eval]) insert(g, net.input, f32(dims, shift), f32(dims, gain));
  return { scale, mean, std, layout };
}

/** The graph input keeps its name and feeds (x − shift) · gain, which the network reads instead. */
function insert(g: Graph, input: string, shift: ReturnType<typeof f32>, gain: ReturnType<typeof f32>): void {
  const inner = g.uniqueName(`${input}_normalized`);
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === input ? inner : i));
  const centered = g.op("Sub", [input, g.constant("input.mean", shift)], {}, { name: "normalize_sub" });
  g.op("Mul", [centered, g.constant("input.gain", gain)], {}, { name: "normalize_mul", output: inner });
  // the two new nodes go first, keeping the graph in topological order
  g.nodes.unshift(...g.nodes.splice(-2, 2));
}
