/**
 * Learning-rate schedules, computed per optimizer step in TypeScript and fed to the training graph's `lr` input.
 * A schedule maps the step index t (0 for the first optimizer step, as PyTorch's `last_epoch` when schedulers are
 * stepped once per batch) to the learning rate. The formulas are those of torch.optim.lr_scheduler.
 */
export type Schedule = (t: number) => number;

export type ScheduleSpec =
  | { kind: "constant"; lr: number }
  /** StepLR: lr·γ^⌊t/stepSize⌋. */
  | { kind: "step"; lr: number; stepSize: number; gamma?: number }
  /** CosineAnnealingLR (closed form): ηmin + (lr − ηmin)(1 + cos(πt/tMax))/2. */
  | { kind: "cosine"; lr: number; tMax: number; etaMin?: number }
  /** LinearLR warm-up from lr·startFactor to lr over `steps`, then `after` (SequentialLR) restarted at 0. */
  | { kind: "warmup"; lr: number; steps: number; startFactor?: number; after?: ScheduleSpec }
  /** OneCycleLR (two phases), lr = max_lr. */
  | {
      kind: "one-cycle";
      maxLr: number;
      totalSteps: number;
      pctStart?: number;
      anneal?: "cos" | "linear";
      divFactor?: number;
      finalDivFactor?: number;
    };

export class ScheduleError extends Error {
  override name = "ScheduleError";
}

export function schedule(spec: ScheduleSpec): Schedule {
  switch (spec.kind) {
    case "constant":
      return () => spec.lr;
    case "step": {
      const gamma = spec.gamma ?? 0.1;
      positive(spec.stepSize, "stepSize");
      return (t) => spec.lr * gamma ** Math.floor(t / spec.stepSize);
    }
    case "cosine": {
      const etaMin = spec.etaMin ?? 0;
      positive(spec.tMax, "tMax");
      return (t) => etaMin + ((spec.lr - etaMin) * (1 + Math.cos((Math.PI * t) / spec.tMax))) / 2;
    }
    case "warmup": {
      const start = spec.startFactor ?? 1 / 3;
      positive(spec.steps, "steps");
      if (!(start > 0 && start <= 1)) throw new ScheduleError(`startFactor must be in (0, 1], got ${start}`);
      const after = spec.after ? schedule(spec.after) : () => spec.lr;
      return (t) =>
        t < spec.steps ? spec.lr * (start + ((1 - start) * t) / spec.steps) : after(t - spec.steps);
    }
    case "one-cycle": {
      const {
        maxLr,
        totalSteps,
        pctStart = 0.3,
        anneal = "cos",
        divFactor = 25,
        finalDivFactor = 1e4,
      } = spec;
      positive(totalSteps, "totalSteps");
      if (!(pctStart > 0 && pctStart < 1))
        throw new ScheduleError(`pctStart must be in (0, 1), got ${pctStart}`);
      const initial = maxLr / divFactor;
      const min = initial / finalDivFactor;
      const f =
        anneal === "cos"
          ? (a: number, b: number, pct: number) => b + ((a - b) / 2) * (1 + Math.cos(Math.PI * pct))
          : (a: number, b: number, pct: number) => (b - a) * pct + a;
      const end1 = pctStart * totalSteps - 1;
      const end2 = totalSteps - 1;
      return (t) => {
        if (t > totalSteps)
          throw new ScheduleError(`one-cycle schedule of ${totalSteps} steps asked for step ${t}`);
        return t <= end1 ? f(initial, maxLr, t / end1) : f(maxLr, min, (t - end1) / (end2 - end1));
      };
    }
  }
}

function positive(v: number, name: string): void {
  if (!(v > 0)) throw new ScheduleError(`${name} must be > 0, got ${v}`);
}
