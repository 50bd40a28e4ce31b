/**
 * Combine a seed with further integers (epoch, item index, a purpose tag) into one 32-bit seed, so that each
 * (seed, epoch, item) gets its own independent random stream, whatever order the batches are filled in.
 * murmur3's finaliser applied after each part.
 */
export function mixSeed(seed: number, ...parts: number[]): number {
  let h = fmix((seed >>> 0) ^ 0x9e3779b9);
  for (const p of parts) h = fmix((h ^ fmix(p >>> 0)) + 0x7f4a7c15);
  return h >>> 0;
}

function fmix(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Purpose tags for mixSeed, so the shuffle, the split and the augmentation never share a stream. */
export const SEED_TAG = { shuffle: 1, split: 2, augment: 3, statsSample: 4 } as const;
