import { Rng } from "../util/rng.js";
import { type Dataset, sampleSize } from "./dataset.js";
import { mixSeed, SEED_TAG } from "./seed.js";

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch (default true). The order of epoch e depends only on (seed, e). */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default false). */
  dropLast?: boolean;
  /** Batches prepared ahead of the consumer (default 3). Memory: (prefetch + 1) batches. */
  prefetch?: number;
}

/** Where to start or resume: the batch `batch` of epoch `epoch` (both from 0). */
export interface LoaderPosition {
  epoch: number;
  batch: number;
}

export interface Batch {
  epoch: number;
  /** Index of this batch within its epoch. */
  batch: number;
  /** Samples in this batch (the batch size, or fewer for the last batch of an epoch). */
  size: number;
  /** size × sampleSize values (a view of a reused buffer; valid until the iterator's next call). */
  x: Float32Array;
  /** size labels. */
  y: BigInt64Array;
  /** The dataset items in this batch. */
  items: Int32Array;
}

interface Slot {
  x: Float32Array;
  y: BigInt64Array;
  items: Int32Array;
}

/**
 * Batches in a seeded shuffled order, prepared ahead of the consumer.
 *
 * Filling happens in `setImmediate` callbacks, one batch per callback, whenever fewer than `prefetch` batches are
 * waiting: so while the training step awaits ONNX Runtime (whose `run` is asynchronous and frees the JS thread),
 * the next batches are being filled, and the step finds its batch ready. Buffers are recycled: a yielded batch is
 * valid until the consumer asks for the next one, and at most prefetch + 1 batches are in memory at once (lazily
 * decoded datasets such as image folders never hold more than that).
 */
export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly prefetch: number;
  readonly sampleSize: number;

  constructor(
    readonly dataset: Dataset,
    opts: LoaderOptions,
  ) {
    if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) {
      throw new RangeError(`batch size must be a whole number ≥ 1, got ${opts.batchSize}`);
    }
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? true;
    this.seed = opts.seed ?? 0;
    this.dropLast = opts.dropLast ?? false;
    this.prefetch = opts.prefetch ?? 3;
    if (!(Number.isInteger(this.prefetch) && this.prefetch >= 1)) {
      throw new RangeError(`prefetch must be a whole number ≥ 1, got ${opts.prefetch}`);
    }
    this.sampleSize = sampleSize(dataset.inputShape);
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(
        `${dataset.name} has ${dataset.length} items: not one full batch of ${this.batchSize} (dropLast is on)`,
      );
    }
  }

  get batchesPerEpoch(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The item order of an epoch: a seeded permutation (or 0..n-1 without shuffling). */
  epochOrder(epoch: number): Int32Array {
    const order = new Int32Array(this.dataset.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    if (this.shuffle) new Rng(mixSeed(this.seed, SEED_TAG.shuffle, epoch)).shuffle(order);
    return order;
  }

  /** The batches of one epoch, from batch `from` (to resume mid-epoch). */
  epoch(epoch: number, from = 0): AsyncIterableIterator<Batch> {
    return this.iterate({ epoch, batch: from }, { epoch: epoch + 1, batch: 0 });
  }

  /**
   * Batches from `start` (inclusive) to `end` (exclusive; default: run forever), crossing epoch boundaries
   * without a pause in the prefetching.
   */
  iterate(
    start: LoaderPosition = { epoch: 0, batch: 0 },
    end?: LoaderPosition,
  ): AsyncIterableIterator<Batch> {
    const per = this.batchesPerEpoch;
    if (!(start.batch >= 0 && start.batch < per && start.epoch >= 0)) {
      throw new RangeError(
        `cannot start at epoch ${start.epoch}, batch ${start.batch}: an epoch has ${per} batches`,
      );
    }
    const first = start.epoch * per + start.batch;
    const last = end ? end.epoch * per + end.batch : Number.POSITIVE_INFINITY;
    return new Prefetcher(this, first, last);
  }

  /** Fill one batch synchronously (used by the prefetcher; also handy for evaluation code). */
  fillBatch(epoch: number, batch: number, order: Int32Array, slot: Slot): Batch {
    const lo = batch * this.batchSize;
    const size = Math.min(this.batchSize, order.length - lo);
    const items = slot.items.subarray(0, size);
    items.set(order.subarray(lo, lo + size));
    const x = slot.x.subarray(0, size * this.sampleSize);
    const y = slot.y.subarray(0, size);
    this.dataset.fill(items, x, y, { epoch });
    return { epoch, batch, size, x, y, items };
  }

  newSlot(): Slot {
    return {
      x: new Float32Array(this.batchSize * this.sampleSize),
      y: new BigInt64Array(this.batchSize),
      items: new Int32Array(this.batchSize),
    };
  }
}

class Prefetcher implements AsyncIterableIterator<Batch> {
  private next_: number;
  private readonly ready: { batch: Batch; slot: Slot }[] = [];
  private readonly free: Slot[] = [];
  private held: Slot | undefined;
  private scheduled = false;
  private closed = false;
  private failure: unknown;
  private waiter: (() => void) | undefined;
  private order: { epoch: number; items: Int32Array } | undefined;

  constructor(
    private readonly loader: DataLoader,
    first: number,
    private readonly last: number,
  ) {
    this.next_ = first;
    for (let i = 0; i <= loader.prefetch; i++) this.free.push(loader.newSlot());
    this.pump();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Batch> {
    return this;
  }

  async next(): Promise<IteratorResult<Batch>> {
    if (this.held) {
      this.free.push(this.held);
      this.held = undefined;
      this.pump();
    }
    while (this.ready.length === 0) {
      if (this.failure !== undefined) {
        const e = this.failure;
        this.failure = undefined;
        this.close();
        throw e;
      }
      if (this.closed || this.next_ >= this.last) return { done: true, value: undefined };
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    const { batch, slot } = this.ready.shift()!;
    this.held = slot;
    this.pump();
    return { done: false, value: batch };
  }

  async return(): Promise<IteratorResult<Batch>> {
    this.close();
    return { done: true, value: undefined };
  }

  private close(): void {
    this.closed = true;
    this.ready.length = 0;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private pump(): void {
    if (this.scheduled || this.closed) return;
    if (this.next_ >= this.last || this.free.length === 0 || this.ready.length >= this.loader.prefetch)
      return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.closed || this.free.length === 0 || this.next_ >= this.last) return;
      const per = this.loader.batchesPerEpoch;
      const epoch = Math.floor(this.next_ / per);
      const batch = this.next_ - epoch * per;
      if (this.order?.epoch !== epoch) this.order = { epoch, items: this.loader.epochOrder(epoch) };
      const slot = this.free.pop()!;
      try {
        this.ready.push({ batch: this.loader.fillBatch(epoch, batch, this.order.items, slot), slot });
        this.next_++;
      } catch (e) {
        this.free.push(slot);
        this.failure = e;
        this.closed = true;
        this.wake();
        return;
      }
      this.wake();
      this.pump();
    });
  }
}
