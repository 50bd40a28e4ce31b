import { Rng } from "../util/rng.js";
import { type ChannelStats, checkBatch, type Dataset, type FillContext } from "./dataset.js";
import { mixSeed, SEED_TAG } from "./seed.js";

/** A view of some items of another dataset, in the order given. */
export class SubsetDataset implements Dataset {
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  readonly length: number;
  private scratch = new Int32Array(0);

  constructor(
    readonly base: Dataset,
    /** Indices into `base`. */
    readonly items: Int32Array,
    readonly name = `${base.name}[subset]`,
  ) {
    this.inputShape = base.inputShape;
    this.numClasses = base.numClasses;
    if (base.classNames) this.classNames = base.classNames;
    this.length = items.length;
    for (const i of items) {
      if (!(i >= 0 && i < base.length))
        throw new RangeError(`${name}: item ${i} outside 0..${base.length - 1}`);
    }
  }

  /** The statistics of the whole base dataset (the usual practice: a split keeps its parent's normalisation). */
  stats(): ChannelStats {
    return this.base.stats();
  }

  fill(indices: ArrayLike<number>, x: Float32Array, y: BigInt64Array, ctx?: FillContext): void {
    checkBatch(indices, x, y, 0, this.length, this.name);
    if (this.scratch.length < indices.length) this.scratch = new Int32Array(indices.length);
    const mapped = this.scratch.subarray(0, indices.length);
    for (let k = 0; k < indices.length; k++) mapped[k] = this.items[indices[k]!]!;
    this.base.fill(mapped, x, y, ctx);
  }
}

export interface SplitOptions {
  /** Fraction of the items held out for validation, in (0, 1). */
  fraction: number;
  seed: number;
}

/**
 * Hold out a seeded random fraction of a training set for validation. Same seed → same split. Both parts keep
 * their items in the base dataset's order.
 */
export function splitValidation(
  ds: Dataset,
  opts: SplitOptions,
): { train: SubsetDataset; val: SubsetDataset } {
  const { fraction, seed } = opts;
  if (!(fraction > 0 && fraction < 1)) {
    throw new RangeError(`validation fraction must be between 0 and 1 (exclusive), got ${fraction}`);
  }
  const nVal = Math.round(ds.length * fraction);
  if (nVal < 1 || nVal >= ds.length) {
    throw new RangeError(
      `a validation fraction of ${fraction} of ${ds.length} items leaves ${nVal} for validation and ` +
        `${ds.length - nVal} for training; choose a fraction that leaves both non-empty`,
    );
  }
  const perm = new Int32Array(ds.length);
  for (let i = 0; i < perm.length; i++) perm[i] = i;
  new Rng(mixSeed(seed, SEED_TAG.split)).shuffle(perm);
  const val = perm.slice(0, nVal).sort();
  const train = perm.slice(nVal).sort();
  return {
    train: new SubsetDataset(ds, train, `${ds.name}[train]`),
    val: new SubsetDataset(ds, val, `${ds.name}[val]`),
  };
}
