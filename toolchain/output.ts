import { OnnxError } from "../src/onnx/errors.js";
import { UsageError } from "./errors.js";

export interface OutputOptions {
  json?: boolean;
}

/**
 * Print a command's result: human text to stdout (stderr when --json), and with --json one JSON object as the
 * last line of stdout.
 */
export function emit(opts: OutputOptions, human: string, json: unknown): void {
  if (opts.json) {
    if (human) process.stderr.write(human.endsWith("\n") ? human : `${human}\n`);
    process.stdout.write(`${JSON.stringify(json)}\n`);
  } else if (human) process.stdout.write(human.endsWith("\n") ? human : `${human}\n`);
}

/** Errors the user can act on (bad input) exit 2; anything else exits 1. No stack trace unless QAT_DEBUG is set. */
export function exitCodeFor(err: unknown): number {
  const e = err as Error & { exitCode?: number };
  if (typeof e?.exitCode === "number") return e.exitCode;
  if (err instanceof UsageError || err instanceof OnnxError) return 2;
  // bad input the user can fix: a dataset, a model, a configuration that does not fit
  const badInput = [
    "DataError",
    "AutodiffError",
    "NnError",
    "ImportError",
    "ScheduleError",
    "OptimizerError",
    "QConfigError",
    "ObserverError",
  ];
  if (e && badInput.includes(e.name)) return 2;
  return 1;
}

export function reportError(err: unknown): void {
  const e = err as Error;
  const msg = e?.message ?? String(err);
  process.stderr.write(`qat: error: ${msg}\n`);
  if (process.env.QAT_DEBUG && e?.stack) process.stderr.write(`${e.stack}\n`);
}
