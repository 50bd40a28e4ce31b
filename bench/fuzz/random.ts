/** Seeded randomness for the fuzzer: case i of a run depends only on (seed, i). */

/** splitmix32: a small, good PRNG; returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

export type Rand = () => number;
export const int = (r: Rand, n: number): number => Math.floor(r() * n);
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;
/** Log-uniform integer in [lo, hi]. */
export const logInt = (r: Rand, lo: number, hi: number): number =>
  Math.floor(Math.exp(Math.log(lo) + r() * Math.log(hi / lo)));
