/**
 * Fuzz the ONNX decoder with mutated real models: every case must decode or raise one OnnxError, never crash, hang
 * or allocate without bound.
 *
 *   npm run build && node dist/bench/fuzz.js [--cases N] [--seed S] [--models DIR]
 *
 * Defaults: 10,000 cases, seed 1, the models in ../shared/models. Cases run in a child process that reports each
 * case before running it, so a process-level failure (abort, out of memory, stack overflow) or a hang (no progress
 * for 10 s) is counted as a crash and the run resumes at the next case. Case i depends only on (seed, i).
 * Prints: cases tried, decoded fine, typed errors, crashes, the slowest case in ms, and the peak RSS.
 */
import { fork } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { decodeModel, encodeModel } from "../src/onnx/codec.js";
import { OnnxError } from "../src/onnx/errors.js";

export interface FuzzModel {
  name: string;
  bytes: Uint8Array;
}

export interface FuzzCase {
  index: number;
  model: string;
  kind: string;
  bytes: Uint8Array;
  /** Set for some cases so external-data references are resolved against the model's folder. */
  path?: string;
}

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

// ---------------------------------------------------------------- seeded randomness

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

type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;
/** Log-uniform integer in [lo, hi]. */
const logInt = (r: Rand, lo: number, hi: number): number =>
  Math.floor(Math.exp(Math.log(lo) + r() * Math.log(hi / lo)));

// ---------------------------------------------------------------- protobuf writing

function varint(v: number | bigint): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? b | 0x80 : b);
  } while (x);
  return out;
}

const concat = (parts: ArrayLike<number>[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const enc = new TextEncoder();
/** A length-delimited field. */
const ld = (id: number, ...payload: (Uint8Array | number[] | string)[]): Uint8Array => {
  const body = concat(payload.map((p) => (typeof p === "string" ? enc.encode(p) : p)));
  return concat([varint(id * 8 + 2), varint(body.length), body]);
};
/** A varint field. */
const vf = (id: number, v: number | bigint): number[] => [...varint(id * 8), ...varint(v)];
/** A 32-bit float field. */
const ff = (id: number, v: number): number[] => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...varint(id * 8 + 5), ...b];
};

/** Top-level fields of a message (schema-less): [tag offset, field id, wire type, data start, data end]. */
interface Span {
  at: number;
  id: number;
  wire: number;
  start: number;
  end: number;
  lenAt: number;
}

function readVarint(b: Uint8Array, pos: number): [number, number] | undefined {
  let v = 0;
  let scale = 1;
  for (let i = 0; i < 10 && pos < b.length; i++) {
    const x = b[pos++]!;
    v += (x & 0x7f) * scale;
    scale *= 128;
    if (x < 0x80) return [v, pos];
  }
  return undefined;
}

/** Parse a message's fields; undefined when the bytes are not a clean message. */
function fields(b: Uint8Array, from = 0, to = b.length): Span[] | undefined {
  const out: Span[] = [];
  let pos = from;
  while (pos < to) {
    const tag = readVarint(b, pos);
    if (!tag) return undefined;
    const [t, p] = tag;
    const id = Math.floor(t / 8);
    const wire = t % 8;
    if (id === 0) return undefined;
    if (wire === 0) {
      const v = readVarint(b, p);
      if (!v) return undefined;
      out.push({ at: pos, id, wire, start: p, end: v[1], lenAt: p });
      pos = v[1];
    } else if (wire === 1 || wire === 5) {
      const end = p + (wire === 1 ? 8 : 4);
      if (end > to) return undefined;
      out.push({ at: pos, id, wire, start: p, end, lenAt: p });
      pos = end;
    } else if (wire === 2) {
      const l = readVarint(b, p);
      if (!l || l[1] + l[0] > to) return undefined;
      out.push({ at: pos, id, wire, start: l[1], end: l[1] + l[0], lenAt: p });
      pos = l[1] + l[0];
    } else return undefined;
  }
  return out;
}

/** Every field of every nested message that parses as one (length-delimited fields are tried as messages). */
function allSpans(b: Uint8Array, limit = 20000): Span[] {
  const out: Span[] = [];
  const todo: [number, number][] = [[0, b.length]];
  while (todo.length && out.length < limit) {
    const [from, to] = todo.pop()!;
    const fs = fields(b, from, to);
    if (!fs) continue;
    for (const f of fs) {
      out.push(f);
      if (f.wire === 2 && f.end - f.start >= 2) todo.push([f.start, f.end]);
    }
  }
  return out;
}

const spanCache = new WeakMap<Uint8Array, Span[]>();
function spansOf(b: Uint8Array): Span[] {
  let s = spanCache.get(b);
  if (!s) {
    s = allSpans(b);
    spanCache.set(b, s);
  }
  return s;
}

/** Replace bytes [from, to) with `middle`. */
const splice = (b: Uint8Array, from: number, to: number, middle: ArrayLike<number>): Uint8Array =>
  concat([b.subarray(0, from), middle, b.subarray(to)]);

/** Add fields to the model's graph (field 7), rewriting its length prefix. */
function injectIntoGraph(b: Uint8Array, extra: Uint8Array, atStart = false): Uint8Array {
  const top = fields(b);
  const g = top?.find((f) => f.id === 7 && f.wire === 2);
  if (!g) return concat([b, ld(7, extra)]);
  const body = atStart
    ? concat([extra, b.subarray(g.start, g.end)])
    : concat([b.subarray(g.start, g.end), extra]);
  return splice(b, g.at, g.end, ld(7, body));
}

// ---------------------------------------------------------------- hostile fragments

const FLOAT = 1;
const tensorBytes = (name: string, dims: (number | bigint)[], dtype: number, payload: number[]): Uint8Array =>
  concat([...dims.map((d) => vf(1, d)), vf(2, dtype), ld(8, name), payload]);

/** A node `op` whose attribute `name` holds a graph holding a node ... `depth` levels deep. */
function nestedGraphs(depth: number): Uint8Array {
  let g: Uint8Array = ld(2, "leaf");
  for (let i = 0; i < depth; i++) {
    const attr = ld(5, ld(1, "then_branch"), vf(20, 5), ld(6, g));
    const node = ld(1, ld(1, "c"), ld(2, `y${i}`), ld(4, "If"), attr);
    g = concat([node, ld(2, `g${i}`)]);
  }
  return g; // graph body: node + name
}

/** A TypeProto of sequences nested `depth` deep around a float tensor type. */
function nestedType(depth: number): Uint8Array {
  let t: Uint8Array = ld(1, vf(1, FLOAT));
  for (let i = 0; i < depth; i++) t = ld(4, ld(1, t));
  return t;
}

const HUGE = [2n ** 31n, 2n ** 32n - 1n, 2n ** 40n, 2n ** 53n + 1n, 2n ** 63n - 1n, -1n, -(2n ** 63n)];

function hostile(r: Rand): Uint8Array {
  switch (int(r, 12)) {
    case 0: // dims claiming 2^40 elements (or more), with a few bytes of data
      return ld(
        5,
        tensorBytes(
          "big",
          pick(r, [[2 ** 20, 2 ** 20], [2 ** 40], [2 ** 30, 2 ** 30, 2 ** 30], [-1, 4], [2n ** 62n, 4]]),
          FLOAT,
          [...ld(9, [0, 0, 128, 63])],
        ),
      );
    case 1: {
      // attribute whose type says one thing and whose fields say another
      const attr = pick(r, [
        concat([ld(1, "a"), vf(20, 4)]), // TENSOR without t
        concat([ld(1, "a"), vf(20, 5)]), // GRAPH without g
        concat([ld(1, "a"), vf(20, 99)]), // unknown type
        concat([ld(1, "a"), vf(20, 7), ff(2, 1.5)]), // INTS with f
        concat([ld(1, "a"), vf(20, 1), ld(10, ld(2, "x"))]), // FLOAT with tensors
        concat([ld(1, "a")]), // nothing at all
        concat([vf(20, 2), vf(3, 5)]), // no name
        concat([ld(1, "__proto__"), vf(20, 2), vf(3, 1)]),
        concat([ld(1, "a"), vf(20, 11)]), // SPARSE_TENSOR without value
        concat([ld(1, "a"), vf(20, 4), ld(5, vf(2, 200))]), // tensor with unknown dtype
      ]);
      return ld(1, ld(1, "x"), ld(2, "y"), ld(4, "Relu"), ld(5, attr), ld(5, attr));
    }
    case 2: // initializer with an invalid data type or location
      return ld(
        5,
        tensorBytes("t", [2], pick(r, [0, 24, 99, 255, 2 ** 31 - 1]), []),
        vf(14, pick(r, [1, 2, 7])),
      );
    case 3: // value infos of odd types
      return ld(
        13,
        ld(1, "v"),
        ld(
          2,
          pick(r, [
            new Uint8Array(),
            ld(1, vf(1, 999)),
            ld(1, vf(1, 0)),
            ld(5, vf(1, 7)),
            ld(9, new Uint8Array()),
            ld(8, vf(1, 1)),
            ld(1, vf(1, 1), ld(2, ld(1, vf(1, 3), ld(2, "n")))),
            ld(1, vf(1, 1), ld(2, ld(1, vf(1, -5)))),
            ld(1, vf(1, 1), ld(2, ld(1, vf(1, 2 ** 62)))),
          ]),
        ),
      );
    case 4: // external data with hostile locations, without or with a model path
      return ld(
        5,
        tensorBytes("ext", [2], FLOAT, []),
        vf(14, 1),
        ld(
          13,
          ld(1, "location"),
          ld(2, pick(r, ["../../../etc/passwd", "/etc/passwd", "", "nope.bin", "SOURCES.md", ".", ".."])),
        ),
        ld(
          13,
          ld(1, pick(r, ["offset", "length"])),
          ld(2, pick(r, ["-1", "1e3", "99999999999", "0x10", "4"])),
        ),
      );
    case 5: // a known field with the wrong wire type (graph name as a varint, node as a fixed32)
      return concat([vf(2, 5), [...varint(1 * 8 + 5), 1, 2, 3, 4]]);
    case 6: // deep subgraph nesting
      return ld(
        1,
        ld(1, "c"),
        ld(2, "deep"),
        ld(4, "If"),
        ld(5, ld(1, "then_branch"), vf(20, 5), ld(6, nestedGraphs(logInt(r, 2, 3000)))),
      );
    case 7: // deep TypeProto nesting
      return ld(11, ld(1, "seq"), ld(2, nestedType(logInt(r, 2, 20000))));
    case 8: {
      // huge repeated counts: empty nodes, inputs, or one packed run of dims
      const n = logInt(r, 1000, 400000);
      const unit = pick(r, [ld(1), ld(11, ld(1, "i")), ld(5, ld(1, "x"))]);
      return concat(Array.from({ length: n }, () => unit));
    }
    case 9: {
      // a packed dims run of 1s and an element claim that does not match
      const n = logInt(r, 1000, 1000000);
      return ld(5, ld(1, new Uint8Array(n).fill(1)), vf(2, FLOAT), ld(8, "packed"), ld(9, [0, 0, 0, 0]));
    }
    case 10: // huge attribute lists
      return ld(
        1,
        ld(4, "Relu"),
        ld(5, ld(1, "ints"), vf(20, 7), ld(8, new Uint8Array(logInt(r, 1000, 1000000)).fill(3))),
      );
    default: // an int64 attribute at the limits
      return ld(1, ld(4, "Relu"), ld(5, ld(1, "i"), vf(20, 2), vf(3, pick(r, HUGE))));
  }
}

// ---------------------------------------------------------------- cases

export const KINDS = [
  "bitflip",
  "overwrite",
  "truncate",
  "insert",
  "delete",
  "inflate-length",
  "inflate-varint",
  "hostile",
  "splice",
] as const;

export function makeCase(models: FuzzModel[], seed: number, index: number): FuzzCase {
  const r = prng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const model = pick(r, models);
  const b = model.bytes;
  const kind = pick(r, KINDS);
  const spans = spansOf(b);
  // half the offsets land on a field's tag or length, where a change alters structure rather than weight values
  const at = () =>
    r() < 0.5 && spans.length ? pick(r, spans)[r() < 0.5 ? "at" : "lenAt"] : int(r, b.length);
  let out: Uint8Array;
  switch (kind) {
    case "bitflip": {
      out = new Uint8Array(b);
      for (let k = 1 + int(r, 8); k > 0; k--) out[at()]! ^= 1 << int(r, 8);
      break;
    }
    case "overwrite": {
      out = new Uint8Array(b);
      const start = at();
      for (let k = 0; k < 1 + int(r, 16) && start + k < out.length; k++) {
        out[start + k] = pick(r, [0, 0xff, 0x80, 0x7f, 0x0a, 0x12, int(r, 256)]);
      }
      break;
    }
    case "truncate":
      out = b.slice(0, at());
      break;
    case "insert":
      out = splice(
        b,
        at(),
        0,
        Array.from({ length: 1 + int(r, 64) }, () => int(r, 256)),
      );
      break;
    case "delete": {
      const s = at();
      out = splice(b, s, s + 1 + int(r, 64), []);
      break;
    }
    case "inflate-length":
    case "inflate-varint": {
      const wire = kind === "inflate-length" ? 2 : 0;
      const candidates = spans.filter((s) => s.wire === wire);
      if (!candidates.length) {
        out = b.slice(0, at());
        break;
      }
      const s = pick(r, candidates);
      const huge = pick(r, HUGE);
      const end = wire === 2 ? s.start : s.end; // the varint to replace is [lenAt, end)
      out = splice(b, s.lenAt, end, varint(huge));
      break;
    }
    case "hostile":
      out = injectIntoGraph(b, hostile(r), r() < 0.5);
      break;
    default: {
      const other = pick(r, models).bytes;
      const from = int(r, other.length);
      out = splice(b, at(), at(), other.subarray(from, from + 1 + int(r, 4096)));
      break;
    }
  }
  return {
    index,
    model: model.name,
    kind,
    bytes: out,
    path: r() < 0.2 ? join(SHARED_MODELS, model.name) : undefined,
  };
}

// ---------------------------------------------------------------- running

const HERE = dirname(fileURLToPath(import.meta.url));
/** ../shared/models beside the repository, found from this file (bench/ or dist/bench/). */
export const SHARED_MODELS =
  [resolve(HERE, "../../shared/models"), resolve(HERE, "../../../shared/models")].find((d) => {
    try {
      return readdirSync(d).some((f) => f.endsWith(".onnx"));
    } catch {
      return false;
    }
  }) ?? resolve(HERE, "../../shared/models");

export function loadModels(dir = SHARED_MODELS): FuzzModel[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".onnx"))
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
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

function emptyReport(): FuzzReport {
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

function record(report: FuzzReport, c: FuzzCase, o: Outcome, ms: number, cpuMs = ms): void {
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

// ---------------------------------------------------------------- command line

const HANG_MS = 10_000;

function merge(into: FuzzReport, part: FuzzReport): void {
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

/** Run cases [first, first+cases) in child processes, restarting after a process-level failure or a hang. */
async function supervise(cases: number, seed: number, dir: string): Promise<FuzzReport> {
  const total = emptyReport();
  const models = loadModels(dir);
  let next = 0;
  while (next < cases) {
    const from = next;
    let current = from;
    const result = await new Promise<FuzzReport | string>((done) => {
      const child = fork(
        fileURLToPath(import.meta.url),
        ["--child", String(from), String(cases - from), String(seed), dir],
        {
          stdio: ["ignore", "inherit", "pipe", "ipc"],
        },
      );
      let stderr = "";
      child.stderr?.on("data", (d) => {
        stderr = (stderr + d).slice(-2000);
      });
      let timer = setTimeout(hang, HANG_MS);
      function hang() {
        child.kill("SIGKILL");
        done(`hang: no progress for ${HANG_MS} ms`);
      }
      child.on("message", (m: { at?: number; report?: FuzzReport }) => {
        if (m.at !== undefined) {
          current = m.at;
          clearTimeout(timer);
          timer = setTimeout(hang, HANG_MS);
        } else if (m.report) {
          clearTimeout(timer);
          done(m.report);
        }
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        done(
          `process exited (code ${code}, signal ${signal}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
        );
      });
    });
    if (typeof result === "string") {
      // cases before `current` finished in the dead child but their tallies died with it: rerun them in-process
      if (current > from) merge(total, runFuzz({ cases: current - from, seed, first: from, models }));
      const c = makeCase(models, seed, current);
      record(total, c, { crash: result }, 0);
      next = current + 1;
    } else {
      merge(total, result);
      next = cases;
    }
  }
  total.peakRssMb = Math.max(total.peakRssMb, process.resourceUsage().maxRSS / 1024);
  return total;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  if (process.argv[2] === "--child") {
    const [first, cases, seed, dir] = process.argv.slice(3).map((v, i) => (i < 3 ? Number(v) : v)) as [
      number,
      number,
      number,
      string,
    ];
    const report = runFuzz({
      first,
      cases,
      seed,
      models: loadModels(dir),
      before: (at) => process.send?.({ at }),
    });
    process.send?.({ report }, () => process.exit(0));
    return;
  }
  const cases = Number(arg("--cases", "10000"));
  const seed = Number(arg("--seed", "1"));
  const dir = resolve(arg("--models", SHARED_MODELS));
  if (!Number.isInteger(cases) || cases < 1 || !Number.isInteger(seed)) {
    console.error("usage: node dist/bench/fuzz.js [--cases N] [--seed S] [--models DIR]");
    process.exit(2);
  }
  const t0 = performance.now();
  const r = await supervise(cases, seed, dir);
  const secs = (performance.now() - t0) / 1000;
  console.log(`fuzz: seed ${seed}, ${loadModels(dir).length} models from ${dir}`);
  console.log(`cases tried     ${r.cases}`);
  console.log(`decoded fine    ${r.decoded}`);
  console.log(`typed errors    ${r.typedErrors}`);
  console.log(`crashes         ${r.crashes.length}`);
  console.log(
    `slowest case    ${r.slowestMs.toFixed(1)} ms wall, ${r.slowestCpuMs.toFixed(1)} ms CPU (${r.slowestCase})`,
  );
  console.log(`peak RSS        ${r.peakRssMb.toFixed(0)} MB`);
  console.log(`wall time       ${secs.toFixed(1)} s`);
  console.log("by kind         cases / decoded / typed / crashes");
  for (const [k, v] of Object.entries(r.byKind).sort()) {
    console.log(
      `  ${k.padEnd(15)}${[v.cases, v.decoded, v.typed, v.crashes].map((x) => String(x).padStart(7)).join("")}`,
    );
  }
  for (const c of r.crashes.slice(0, 10))
    console.log(`crash #${c.index} ${c.kind} on ${c.model}: ${c.error}`);
  process.exitCode = r.crashes.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
