import type { Dim } from "../ir.js";
import { fmt } from "./dims.js";

/** Thrown by broadcastShapes; rules turn it into an OnnxError naming the node. */
export class BroadcastError extends Error {
  override name = "BroadcastError";
}

/**
 * Numpy (multidirectional) broadcasting of two shapes. Known sizes must be equal or 1; a symbol against n > 1
 * gives n; two different symbols, or an unknown dim against 1 or a symbol, give null.
 */
export function broadcastShapes(a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = i < rank - a.length ? 1 : a[i - (rank - a.length)]!;
    const y = i < rank - b.length ? 1 : b[i - (rank - b.length)]!;
    out.push(broadcastDim(x, y, a, b));
  }
  return out;
}

function broadcastDim(x: Dim, y: Dim, a: readonly Dim[], b: readonly Dim[]): Dim {
  if (x === 1) return y;
  if (y === 1) return x;
  if (typeof x === "number" && typeof y === "number") {
    if (x !== y) throw new BroadcastError(`shapes ${fmt(a)} and ${fmt(b)} do not broadcast (${x} vs ${y})`);
    return x;
  }
  if (typeof x === "number") return x;
  if (typeof y === "number") return y;
  if (x === y) return x;
  return null;
}

/** Broadcast any number of shapes; undefined when one is of unknown rank. */
export function broadcastAll(shapes: (readonly Dim[] | undefined)[]): Dim[] | undefined {
  let out: Dim[] = [];
  for (const s of shapes) {
    if (!s) return undefined;
    out = broadcastShapes(out, s);
  }
  return out;
}

/** Whether `from` broadcasts to exactly `to` (unidirectional, as Gemm's C or PRelu's slope). */
export function broadcastsTo(from: readonly Dim[], to: readonly Dim[]): boolean {
  if (from.length > to.length) return false;
  const off = to.length - from.length;
  return from.every((d, i) => {
    const t = to[i + off]!;
    return d === 1 || d === null || t === null || d === t || typeof d !== typeof t;
  });
}
