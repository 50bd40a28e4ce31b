/**
 * Running cases in this process: decode, re-encode, decode again; tally decoded, typed errors and crashes per kind,
 * with the slowest case and the peak RSS.
 */
import { decodeModel, encodeModel } from "../../src/onnx/codec.js";
import { OnnxError } from "../../src/onnx/errors.js";
import { type FuzzCase, makeCase } from "./cases.js";
import { type FuzzModel, loadModels } from "./models.js";

export interface Crash {
  index: number;
  model: string;
  kind: string;
  error: string;
}

export interface FuzzReport {
  cases: number;
  decoded: number;
  typedErrors: number;
  crashes: Crash[];
  /** Wall time of the slowest case (decode, encode, decode again), and its CPU time (robust to a busy machine). */
  slowestMs: number;
  slowestCpuMs: number;
  slowestCase: string;
  peakRssMb: number;
  byKind: Record<string, { cases: number; decoded: number; typed: number; crashes: number }>;
}

export type Outcome = "decoded" | "typed" | { crash: string };

/** Decode one case, encode what decoded and decode that again. Only OnnxError counts as a proper failure. */
export function runCase(c: FuzzCase): Outcome {
  let model: ReturnType<typeof decodeModel>;
  try {
    model = decodeModel(c.bytes, { path: c.path });
  } catch (e) {
    if (e instanceof OnnxError) return "typed";
    return { crash: `decode: ${describe(e)}` };
  }
  try {
    const again = encodeModel(model);
    decodeModel(again, { path: c.path });
  } catch (e) {
    return { crash: `re-encode: ${describe(e)}` };
  }
  return "decoded";
}

const describe = (e: unknown): string =>
  e instanceof Error ? `${e.name}: ${e.message}\n${e.stack?.split("\n").slice(1, 4).join("\n")}` : String(e);

export interface RunOptions {
  cases: number;
  seed: number;
  first?: number;
  models?: FuzzModel[];
  /** Called before each case runs (the child process reports progress through it). */
  before?: (index: number) => void;
}

export function emptyReport(): FuzzReport {
  return {
    cases: 0,
    decoded: 0,
    typedErrors: 0,
    crashes: [],
    slowestMs: 0,
    slowestCpuMs: 0,
    slowestCase: "",
    peakRssMb: 0,
    byKind: {},
  };
}

export function runFuzz(opts: RunOptions): FuzzReport {
  const models = opts.models ?? loadModels();
  const report = emptyReport();
  const first = opts.first ?? 0;
  for (let i = first; i < first + opts.cases; i++) {
    const c = makeCase(models, opts.seed, i);
    opts.before?.(i);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const outcome = runCase(c);
    const cpu = process.cpuUsage(cpu0);
    const ms = performance.now() - t0;
    record(report, c, outcome, ms, (cpu.user + cpu.system) / 1000);
  }
  report.peakRssMb = process.resourceUsage().maxRSS / 1024;
  return report;
}

export function record(report: FuzzReport, c: FuzzCase, o: Outcome, ms: number, cpuMs = ms): void {
  report.byKind[c.kind] ??= { cases: 0, decoded: 0, typed: 0, crashes: 0 };
  const k = report.byKind[c.kind]!;
  report.cases++;
  k.cases++;
  if (o === "decoded") {
    report.decoded++;
    k.decoded++;
  } else if (o === "typed") {
    report.typedErrors++;
    k.typed++;
  } else {
    k.crashes++;
    report.crashes.push({ index: c.index, model: c.model, kind: c.kind, error: o.crash });
  }
  if (ms > report.slowestMs) {
    report.slowestMs = ms;
    report.slowestCpuMs = cpuMs;
    report.slowestCase = `#${c.index} ${c.kind} on ${c.model}, ${c.bytes.length} bytes`;
  }
}

export function merge(into: FuzzReport, part: FuzzReport): void {
  into.cases += part.cases;
  into.decoded += part.decoded;
  into.typedErrors += part.typedErrors;
  into.crashes.push(...part.crashes);
  if (part.slowestMs > into.slowestMs) {
    into.slowestMs = part.slowestMs;
    into.slowestCpuMs = part.slowestCpuMs;
    into.slowestCase = part.slowestCase;
  }
  into.peakRssMb = Math.max(into.peakRssMb, part.peakRssMb);
  for (const [k, v] of Object.entries(part.byKind)) {
    into.byKind[k] ??= { cases: 0, decoded: 0, typed: 0, crashes: 0 };
    const t = into.byKind[k]!;
    t.cases += v.cases;
    t.decoded += v.decoded;
    t.typed += v.typed;
    t.crashes += v.crashes;
  }
}
