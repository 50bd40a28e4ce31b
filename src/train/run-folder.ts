/**
 * A run folder: what `qat train`, `qat calibrate`, `qat export`, `qat sensitivity` and `qat validate` leave behind,
 * read and written through this one module. No other file spells the name of a file in it.
 */
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { encodeModel, loadModel, modelOf } from "../onnx/codec.js";
import type { Graph, Model } from "../onnx/ir.js";
import { WORKING_OPSET } from "../onnx/opset/working.js";
import { writeFileAtomic } from "../util/atomic.js";
import { FileLock } from "../util/file-lock.js";
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";

/** Files of a run folder. */
export const RUN_FILES = {
  /** The fully resolved training configuration (JSON). */
  config: "config.json",
  /** One JSON object per line: a record per epoch. */
  metrics: "metrics.jsonl",
  /** The eval graph with the latest weights, optimizer state and position: what --resume continues from. */
  checkpoint: "checkpoint.onnx",
  /** The eval graph with the weights of the best evaluation so far. */
  best: "best.onnx",
  /** The eval graph with the final weights. */
  model: "model.onnx",
  /** The final test metrics (JSON). */
  summary: "summary.json",
  /** What importing a foreign model (`--from`) did (JSON). */
  importReport: "import.json",
  /** Per-layer quantization sensitivity of `qat sensitivity` (JSON). */
  sensitivity: "sensitivity.json",
  /** The int8 model `qat export` writes by default. */
  int8: "model.int8.onnx",
  /** The device report (`qat validate --json`). */
  deviceReport: "device-report.json",
  /** Held while a run (or its --resume) writes the folder: see RunFolder.lock. */
  lock: "run.lock",
} as const;

export type RunFile = keyof typeof RUN_FILES;

export class RunFolderError extends Error {
  override name = "RunFolderError";
  readonly exitCode = 2;
}

/** One line of metrics.jsonl. */
export interface MetricsRecord {
  kind: string;
  step: number;
  [key: string]: unknown;
}

export class RunFolder {
  constructor(readonly dir: string) {}

  /** A folder holding a training config or a checkpoint (a run of `qat train` or `qat calibrate`). */
  static isRun(dir: string): boolean {
    const f = new RunFolder(dir);
    return isDirectory(dir) && (f.has("config") || f.has("checkpoint"));
  }

  path(file: RunFile): string {
    return join(this.dir, RUN_FILES[file]);
  }

  has(file: RunFile): boolean {
    return existsSync(this.path(file));
  }

  /**
   * Hold the folder's exclusive lock while `op` writes it (a run, its --resume, a calibration), creating the folder
   * if needed: two runs started on one folder at once, or a run and a --resume of it, would otherwise both pass the
   * "folder is empty" check and interleave their files. Returns the release, which also removes a folder this call
   * created when nothing else was written to it (a failed start leaves no run folder behind). A holder killed with
   * -9 leaves a stale lock that the next run breaks (see src/util/file-lock.ts).
   */
  lock(op: string): () => void {
    const created = !existsSync(this.dir);
    mkdirSync(this.dir, { recursive: true });
    const lock = new FileLock(this.path("lock"));
    if (!lock.tryAcquire(op)) {
      throw new RunFolderError(
        `run folder ${this.dir} is in use by ${lock.describeHolder("another qat process")}: ` +
          `wait for it to finish, or choose another --out`,
      );
    }
    return () => {
      lock.release();
      if (created && readdirSync(this.dir).length === 0) rmSync(this.dir, { recursive: true, force: true });
    };
  }

  /** Refuse a folder that holds anything but its lock: a new run never overwrites another. */
  assertNew(): void {
    const held = RUN_FILES.lock;
    if (existsSync(this.dir) && readdirSync(this.dir).some((f) => f !== held)) {
      throw new RunFolderError(
        `run folder ${this.dir} already exists and is not empty: choose another --out, or --resume it`,
      );
    }
  }

  /** Create the folder of a new run (see assertNew). */
  create(): void {
    this.assertNew();
    mkdirSync(this.dir, { recursive: true });
  }

  // ---- JSON files

  /** config.json as written (unvalidated: the pipeline's resolveConfig checks it). */
  readConfig(): Record<string, unknown> {
    if (!this.has("config")) {
      throw new RunFolderError(
        `${this.dir} is not a run folder (no ${RUN_FILES.config}): train one with qat train`,
      );
    }
    return this.readJson("config", "the run's configuration") as Record<string, unknown>;
  }

  writeConfig(config: unknown): void {
    this.writeJson("config", config);
  }

  /** summary.json, or undefined when training has not finished. */
  readSummary<T = Record<string, unknown>>(): T | undefined {
    return this.has("summary") ? (this.readJson("summary", "the run's summary") as T) : undefined;
  }

  writeSummary(summary: unknown): void {
    this.writeJson("summary", summary);
  }

  /** Any JSON file of the folder, parsed; an unreadable one fails naming the file and what it is. */
  readJson(file: RunFile, what: string = RUN_FILES[file]): unknown {
    const path = this.path(file);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw new RunFolderError(`${path}: cannot read ${what} (${(e as Error).message})`);
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new RunFolderError(`${path}: ${what} is not valid JSON (${(e as Error).message})`);
    }
  }

  writeJson(file: RunFile, value: unknown): void {
    writeFileAtomic(this.path(file), `${JSON.stringify(value, null, 2)}\n`);
  }

  // ---- models

  /** Write an eval graph (with its weights as initializers) as model.onnx or best.onnx. */
  writeModel(graph: Graph, file: "model" | "best" = "model"): void {
    writeFileAtomic(this.path(file), encodeModel(modelOf(graph, { "": WORKING_OPSET })));
  }

  readModel(file: "model" | "best" = "model"): Model {
    return loadModel(this.path(file));
  }

  /** The file holding the run's weights: model.onnx, or checkpoint.onnx when training did not finish. */
  weightsFile(): string | undefined {
    return (["model", "checkpoint"] as const).map((f) => this.path(f)).find((p) => existsSync(p));
  }

  // ---- checkpoint

  readCheckpoint(): Checkpoint | undefined {
    return this.has("checkpoint") ? loadCheckpoint(this.path("checkpoint")) : undefined;
  }

  writeCheckpoint(ck: Checkpoint): void {
    saveCheckpoint(this.path("checkpoint"), ck);
  }

  // ---- metrics.jsonl

  appendMetrics(record: MetricsRecord): void {
    appendFileSync(this.path("metrics"), `${JSON.stringify(record)}\n`);
  }

  /** Every record of metrics.jsonl; a torn last line (a run killed while writing it) is skipped. */
  readMetrics(): MetricsRecord[] {
    if (!this.has("metrics")) return [];
    const out: MetricsRecord[] = [];
    for (const line of readFileSync(this.path("metrics"), "utf8").split("\n")) {
      const r = parseLine(line);
      if (r) out.push(r);
    }
    return out;
  }

  /** Drop metric lines written after the checkpoint a resumed run starts from, so they are not counted twice. */
  truncateMetrics(step: number): void {
    if (!this.has("metrics")) return;
    const keep = readFileSync(this.path("metrics"), "utf8")
      .split("\n")
      .filter((l) => {
        const r = parseLine(l);
        return r !== undefined && r.step <= step;
      });
    writeFileSync(this.path("metrics"), keep.length ? `${keep.join("\n")}\n` : "");
  }
}

function parseLine(line: string): MetricsRecord | undefined {
  if (!line.trim()) return undefined;
  try {
    return JSON.parse(line) as MetricsRecord;
  } catch {
    return undefined;
  }
}

function isDirectory(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}
