import { argmax } from "./argmax.js";

/** Classification metrics accumulated over batches of logits. */
export class ClassificationMetrics {
  readonly confusion: number[][];
  count = 0;
  top1 = 0;
  top5 = 0;

  constructor(readonly classes: number) {
    this.confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  }

  /** Add n rows of logits ([n, classes], row-major) with their labels. */
  add(logits: Float32Array, labels: ArrayLike<bigint | number>, n: number): void {
    const k = this.classes;
    for (let i = 0; i < n; i++) {
      const row = logits.subarray(i * k, i * k + k);
      const label = Number(labels[i]);
      const best = argmax(logits, i * k, k);
      // top-5: the label's logit is beaten by fewer than 5 others (ties favour the lower index, as arg-max does)
      let above = 0;
      const v = row[label]!;
      for (let j = 0; j < k; j++) if (row[j]! > v || (row[j] === v && j < label)) above++;
      this.count++;
      if (best === label) this.top1++;
      if (above < 5) this.top5++;
      this.confusion[label]![best]!++;
    }
  }

  get accuracy(): number {
    return this.count ? this.top1 / this.count : 0;
  }

  get top5Accuracy(): number {
    return this.count ? this.top5 / this.count : 0;
  }

  /** Accuracy of each true class (NaN for a class with no samples). */
  perClass(): number[] {
    return this.confusion.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      return total ? row[c]! / total : Number.NaN;
    });
  }

  toJSON(): {
    accuracy: number;
    top5: number;
    count: number;
    per_class: (number | null)[];
    confusion: number[][];
  } {
    return {
      accuracy: this.accuracy,
      top5: this.top5Accuracy,
      count: this.count,
      per_class: this.perClass().map((v) => (Number.isNaN(v) ? null : v)),
      confusion: this.confusion,
    };
  }
}
