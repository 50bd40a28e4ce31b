/** Running a stage with its clock, and the record it leaves in the stage log. */
import type { MetricValue } from "./metric.js";
import type { StageName, StageRecord } from "./types.js";

export class StageLog {
  readonly records: StageRecord[] = [];

  constructor(
    private readonly reference: () => number | undefined,
    private readonly maxDrop: number,
    private readonly log: (line: string) => void,
  ) {}

  /** Whether a metric is within the budget of the reference. */
  within(value: number): boolean {
    const ref = this.reference();
    // a hair of float noise must not turn an exact match into a miss
    return ref !== undefined && ref - value <= this.maxDrop + 1e-9;
  }

  /** Run `fn` as stage `stage`, time it, record its metric (if any) and what it changed. */
  async run<T extends { changed: string; details: Record<string, unknown>; metric?: MetricValue }>(
    stage: StageName,
    fn: () => Promise<T>,
  ): Promise<T> {
    this.log(`${stage}: running`);
    const t0 = performance.now();
    const r = await fn();
    const seconds = (performance.now() - t0) / 1000;
    const value = r.metric?.value ?? null;
    const ref = this.reference();
    const drop = value === null || ref === undefined ? null : ref - value;
    const rec: StageRecord = {
      stage,
      status: "done",
      metric: value,
      drop,
      withinBudget: value === null ? null : this.within(value),
      seconds,
      changed: r.changed,
      details: r.details,
    };
    this.records.push(rec);
    const figure = value === null ? "" : ` ${value.toFixed(2)}${drop ? ` (drop ${drop.toFixed(2)} pt)` : ""}`;
    this.log(`${stage}:${figure} in ${seconds.toFixed(1)} s — ${r.changed}`);
    return r;
  }

  skip(stage: StageName, reason: string): void {
    this.records.push({
      stage,
      status: "skipped",
      metric: null,
      drop: null,
      withinBudget: null,
      seconds: 0,
      changed: reason,
      details: {},
    });
    this.log(`${stage}: skipped — ${reason}`);
  }
}
