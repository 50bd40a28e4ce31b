import type { Dim } from "../ir.js";

/** A shape as text for messages: [N,3,?,28] (symbolic dims by name, unknown dims as ?). */
export function fmt(shape: readonly Dim[] | undefined): string {
  if (!shape) return "[?…]";
  return `[${shape.map((d) => (d === null ? "?" : String(d))).join(",")}]`;
}

export const isNum = (d: Dim | undefined): d is number => typeof d === "number";

/** Two dims that must be equal; undefined when they cannot be (both known and different). */
export function unify(a: Dim, b: Dim): Dim | undefined {
  if (a === null) return b;
  if (b === null) return a;
  if (typeof a === "number" && typeof b === "number") return a === b ? a : undefined;
  if (typeof a === "number") return a;
  if (typeof b === "number") return b;
  return a; // two symbols: both name the same size; keep the first
}

/** Product of dims: a number when all are numbers, a symbol when all but one symbol are 1, else null. */
export function product(dims: readonly Dim[]): Dim {
  let n = 1;
  let sym: string | undefined;
  let unknown = false;
  for (const d of dims) {
    if (typeof d === "number") n *= d;
    else if (d === null || sym !== undefined) unknown = true;
    else sym = d;
  }
  if (n === 0) return 0;
  if (unknown) return null;
  if (sym === undefined) return n;
  return n === 1 ? sym : null;
}

/** Sum of dims when all are numbers, the other operand when one is 0, else null. */
export function sum(dims: readonly Dim[]): Dim {
  const nonzero = dims.filter((d) => d !== 0);
  if (nonzero.length === 0) return 0;
  if (nonzero.length === 1) return nonzero[0]!;
  return nonzero.every(isNum) ? nonzero.reduce((a, b) => a + b, 0) : null;
}

/** Normalise an axis in [-rank, rank) to [0, rank); undefined when out of range. */
export function normAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : undefined;
}
