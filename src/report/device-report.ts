import { readFileSync } from "node:fs";
import { type BoardResult, type DeviceInfo, type DifferenceStats, ReportError } from "./types.js";

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Checks the fields the report draws from; a missing or mistyped one is named with its path in the JSON. */
class Checker {
  constructor(readonly file: string) {}

  fail(path: string, what: string): never {
    throw new ReportError(
      `not a device report: ${path} ${what}. Pass the JSON that 'qat validate --json' prints`,
      this.file,
    );
  }

  num(o: Obj, key: string, path: string): number {
    const v = o[key];
    // JSON has no NaN or Infinity: JSON.stringify writes them as null (a board that ran nothing)
    if (v === null) return Number.NaN;
    if (typeof v !== "number") this.fail(`${path}.${key}`, "is not a number");
    return v;
  }

  obj(o: Obj, key: string, path: string): Obj {
    const v = o[key];
    if (!isObj(v)) this.fail(`${path}.${key}`, "is missing");
    return v;
  }

  arr(o: Obj, key: string, path: string): unknown[] {
    const v = o[key];
    if (!Array.isArray(v)) this.fail(`${path}.${key}`, "is not a list");
    return v;
  }

  nums(o: Obj, key: string, path: string): number[] | undefined {
    if (o[key] === undefined) return undefined;
    const a = this.arr(o, key, path);
    if (!a.every((x) => typeof x === "number")) this.fail(`${path}.${key}`, "is not a list of numbers");
    return a as number[];
  }

  stats(o: Obj, key: string, path: string) {
    const s = this.obj(o, key, path);
    const p = `${path}.${key}`;
    return {
      p50: this.num(s, "p50", p),
      p90: this.num(s, "p90", p),
      p99: this.num(s, "p99", p),
      mean: this.num(s, "mean", p),
      max: this.num(s, "max", p),
    };
  }

  difference(d: unknown, path: string): DifferenceStats {
    if (!isObj(d)) this.fail(path, "is missing");
    const out: DifferenceStats = {
      name: String(d.name ?? "?"),
      maxAbs: this.num(d, "maxAbs", path),
      meanAbs: this.num(d, "meanAbs", path),
      refMaxAbs: d.refMaxAbs === undefined ? Number.NaN : this.num(d, "refMaxAbs", path),
    };
    if (d.maxSteps !== undefined) out.maxSteps = this.num(d, "maxSteps", path);
    if (d.changed !== undefined) out.changed = this.num(d, "changed", path);
    if (d.histogram !== undefined) {
      const h = this.obj(d, "histogram", path);
      const edges = this.nums(h, "edges", `${path}.histogram`) ?? [];
      const counts = this.nums(h, "counts", `${path}.histogram`) ?? [];
      if (edges.length !== counts.length + 1)
        this.fail(`${path}.histogram`, "needs one more edge than counts");
      out.histogram = { edges, counts };
    }
    return out;
  }

  board(r: Obj, path: string): BoardResult {
    const perClass = this.arr(r, "perClass", path).map((c, i) => {
      const p = `${path}.perClass[${i}]`;
      if (!isObj(c)) this.fail(p, "is not an object");
      return {
        label: this.num(c, "label", p),
        count: this.num(c, "count", p),
        host: this.num(c, "host", p),
        board: this.num(c, "board", p),
        delta: this.num(c, "delta", p),
      };
    });
    const layers = r.layers === undefined ? [] : this.arr(r, "layers", path);
    return {
      device: String(r.device ?? "?"),
      board: typeof r.board === "string" ? r.board : undefined,
      arch: typeof r.arch === "string" ? r.arch : undefined,
      samples: this.num(r, "samples", path),
      hostAccuracy: this.num(r, "hostAccuracy", path),
      boardAccuracy: this.num(r, "boardAccuracy", path),
      drift: this.num(r, "drift", path),
      agreement: this.num(r, "agreement", path),
      perClass,
      output: this.difference(r.output, `${path}.output`),
      layers: layers.map((d, i) => this.difference(d, `${path}.layers[${i}]`)),
      latencyMs: this.stats(r, "latencyMs", path),
      batchLatencyMs: r.batchLatencyMs === undefined ? undefined : this.stats(r, "batchLatencyMs", path),
      batchSize: this.num(r, "batchSize", path),
      peakRssBytes: r.peakRssBytes === undefined ? Number.NaN : this.num(r, "peakRssBytes", path),
      maxDrift: typeof r.maxDrift === "number" ? r.maxDrift : undefined,
      exceeded: r.exceeded === true,
      latencySamplesMs: this.nums(r, "latencySamplesMs", path),
      latency: this.latency(r, path),
    };
  }

  /** Where the latency was measured (reports from before the field have none). */
  latency(r: Obj, path: string): BoardResult["latency"] {
    if (r.latency === undefined) return undefined;
    const l = this.obj(r, "latency", path);
    if (typeof l.emulated !== "boolean") this.fail(`${path}.latency.emulated`, "is not true or false");
    return l.emulated
      ? { emulated: true, note: typeof l.note === "string" ? l.note : "emulated: not the board's speed" }
      : { emulated: false };
  }
}

/**
 * Read a device report: the JSON `qat validate --json` prints (a fleet: one row per board), or one board's report
 * on its own. Unreadable, not JSON, or without the fields the report draws: a ReportError naming the file.
 */
export function readDeviceReport(file: string): DeviceInfo {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ReportError(`cannot read the device report: ${(e as Error).message}`, file);
  }
  // `qat validate --json > file` may hold human lines before the JSON: the JSON object is the last line
  const lines = text.trim().split("\n");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    try {
      json = JSON.parse(lines.at(-1) ?? "");
    } catch (e) {
      throw new ReportError(`the device report is not JSON (${(e as Error).message})`, file);
    }
  }
  const c = new Checker(file);
  if (!isObj(json)) return c.fail("the top level", "is not an object");
  if (!Array.isArray(json.rows)) {
    // one board's report
    const b = c.board(json, "$");
    return { file, samples: b.samples, hostAccuracy: b.hostAccuracy, boards: [b], failed: [] };
  }
  const boards: BoardResult[] = [];
  const failed: DeviceInfo["failed"] = [];
  json.rows.forEach((row, i) => {
    const p = `$.rows[${i}]`;
    if (!isObj(row)) c.fail(p, "is not an object");
    const device = String(row.device ?? "?");
    if (isObj(row.report)) boards.push({ ...c.board(row.report, `${p}.report`), device });
    else if (isObj(row.error))
      failed.push({
        device,
        code: String(row.error.code ?? "error"),
        message: String(row.error.message ?? ""),
      });
    else c.fail(p, "has neither a report nor an error");
  });
  return {
    file,
    model: typeof json.model === "string" ? json.model : undefined,
    dataset: typeof json.dataset === "string" ? json.dataset : undefined,
    samples: c.num(json, "samples", "$"),
    hostAccuracy: c.num(json, "hostAccuracy", "$"),
    boards,
    failed,
  };
}
