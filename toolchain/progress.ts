import cliProgress from "cli-progress";
import type { EpochEvent, StepEvent, TrainHooks } from "../src/pipeline/trainer.js";

/**
 * Training feedback: a progress bar (step, loss, samples/s, ETA) on a terminal, plain log lines every few seconds
 * otherwise. Everything goes to stderr so stdout stays clean for --json.
 */
export function trainProgress(opts: { quiet?: boolean } = {}): TrainHooks & { stop(): void } {
  const err = process.stderr;
  const say = (s: string) => {
    if (!opts.quiet) err.write(`${s}\n`);
  };
  if (opts.quiet || !err.isTTY) {
    let last = 0;
    return {
      onStep(e: StepEvent) {
        const now = Date.now();
        if (now - last < 5000 && e.step !== e.totalSteps) return;
        last = now;
        say(
          `step ${e.step}/${e.totalSteps} epoch ${e.epoch + 1} loss ${e.loss.toFixed(4)} lr ${fmt(e.lr)} ${Math.round(e.samplesPerSec)} samples/s`,
        );
      },
      onEpoch: (e) => say(epochLine(e)),
      log: say,
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      format:
        "{bar} {value}/{total} steps | epoch {epoch} | loss {loss} | {sps} samples/s | ETA {eta_formatted}",
      stream: err,
      hideCursor: true,
      etaBuffer: 50,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    onStep(e: StepEvent) {
      const payload = { epoch: e.epoch + 1, loss: e.loss.toFixed(4), sps: Math.round(e.samplesPerSec) };
      if (!started) {
        bar.start(e.totalSteps, e.step - 1, payload);
        started = true;
      }
      bar.update(e.step, payload);
    },
    onEpoch(e: EpochEvent) {
      bar.stop();
      started = false;
      say(epochLine(e));
    },
    log(m: string) {
      if (started) bar.stop();
      started = false;
      say(m);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

function epochLine(e: EpochEvent): string {
  return (
    `epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)} acc ${(100 * e.trainAccuracy).toFixed(2)}% | ` +
    `${e.evalOn} acc ${(100 * e.evalAccuracy).toFixed(2)}% top-5 ${(100 * e.evalTop5).toFixed(2)}% | ` +
    `${Math.round(e.samplesPerSec)} samples/s, ${e.seconds.toFixed(1)} s`
  );
}

const fmt = (v: number) => (v >= 0.001 ? v.toFixed(4) : v.toExponential(2));
