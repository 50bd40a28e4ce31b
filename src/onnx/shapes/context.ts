import type { DType } from "../dtype.js";
import { OnnxError } from "../errors.js";
import { type Dim, getAttr, type Node } from "../ir.js";
import type { Tensor } from "../tensor.js";
import { fmt } from "./dims.js";

/**
 * What inference knows of one value: element type, shape and, for small tensors (shape arithmetic, constant
 * axes, pads, scales), the element values in row-major order. A value element may be symbolic ("N") or unknown
 * (null), so that Shape→Gather→Unsqueeze→Concat chains carry a batch dimension by name into a Reshape.
 */
export interface Known {
  dtype?: DType;
  shape?: Dim[];
  value?: Dim[];
}

/** Tensors with at most this many elements have their values tracked. */
export const MAX_TRACKED = 64;

/** What a shape rule sees of its node. */
export interface RuleCtx {
  readonly node: Node;
  readonly opset: number;
  /** Whether input i is given (present and not ""). */
  has(i: number): boolean;
  /** Everything known of input i ({} when absent or unknown). */
  input(i: number): Known;
  shape(i: number): Dim[] | undefined;
  dtype(i: number): DType | undefined;
  /** The tracked values of input i, when all are known or partly symbolic. */
  value(i: number): Dim[] | undefined;
  /** The values of input i when every element is a known number. */
  numbers(i: number): number[] | undefined;
  /** The constant tensor behind input i (an initializer or a folded Constant), if any. */
  constant(i: number): Tensor | undefined;
  /** Raise an OnnxError naming the node and its op type. */
  fail(message: string): never;
  /** Attribute readers (a wrong attribute type is reported as an OnnxError). */
  int(name: string, d: number): number;
  float(name: string, d: number): number;
  string(name: string, d: string): string;
  ints(name: string): number[] | undefined;
  floats(name: string): number[] | undefined;
  tensor(name: string): Tensor | undefined;
}

/** A shape rule: what is known of each output (index i for node.outputs[i]). */
export type ShapeRule = (c: RuleCtx) => Known[];

export function makeCtx(
  node: Node,
  opset: number,
  lookup: (name: string) => Known | undefined,
  constant: (name: string) => Tensor | undefined,
): RuleCtx {
  const fail = (message: string): never => {
    throw new OnnxError(`${node.opType}: ${message}`, { node: node.name || node.outputs[0] });
  };
  const get = <T extends "int" | "float" | "string" | "ints" | "floats" | "tensor">(
    name: string,
    type: T,
  ) => {
    try {
      return getAttr(node, name, type);
    } catch {
      return fail(`attribute '${name}' is ${node.attrs[name]!.type}, expected ${type}`);
    }
  };
  const input = (i: number): Known => {
    const name = node.inputs[i];
    return (name && lookup(name)) || {};
  };
  return {
    node,
    opset,
    has: (i) => !!node.inputs[i],
    input,
    shape: (i) => input(i).shape,
    dtype: (i) => input(i).dtype,
    value: (i) => input(i).value,
    numbers: (i) => {
      const v = input(i).value;
      return v?.every((d) => typeof d === "number") ? (v as number[]) : undefined;
    },
    constant: (i) => (node.inputs[i] ? constant(node.inputs[i]) : undefined),
    fail,
    int: (name, d) => get(name, "int")?.value ?? d,
    float: (name, d) => get(name, "float")?.value ?? d,
    string: (name, d) => get(name, "string")?.value ?? d,
    ints: (name) => get(name, "ints")?.value,
    floats: (name) => get(name, "floats")?.value,
    tensor: (name) => get(name, "tensor")?.value,
  };
}

/** The shapes of a node's inputs, for error messages: "input [1,3,28,28], weight [8,1,5,5]". */
export function describe(c: RuleCtx, names: string[]): string {
  return names
    .map((n, i) => (c.has(i) ? `${n} ${fmt(c.shape(i))}` : undefined))
    .filter(Boolean)
    .join(", ");
}
