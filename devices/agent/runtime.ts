/**
 * ONNX Runtime on the board: onnxruntime-node (or the onnxruntime-web fallback for old glibc), loaded from the
 * install's node_modules only when a model is evaluated, so the agent starts and uploads without it.
 *
 * Board-side code: Node built-ins only (the runtime is loaded with require at run time); installed beside the
 * agent as runtime.mjs.
 */
import { readFileSync } from "node:fs";
import type { Install } from "./install.js";
import {
  AgentFailure,
  type BatchReply,
  type EvaluateBatchRequest,
  type EvaluateOpenRequest,
} from "./protocol.js";
import { countCorrect, packTensors, unpackTensor } from "./tensors.js";

/**
 * This process's own peak resident memory in bytes: VmHWM from /proc/self/status. getrusage's maxrss (Node's
 * resourceUsage().maxRSS) is no use here: a child inherits its parent's figure at fork/exec, so an agent started by
 * a 600 MB host process reported 604 MB where its own peak was 40 MB. Falls back to maxrss where there is no /proc.
 */
export function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // no /proc (not Linux)
  }
  return process.resourceUsage().maxRSS * 1024;
}

interface OrtLike {
  InferenceSession: { create(src: Uint8Array | string, opts?: unknown): Promise<OrtSession> };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensor;
  env: { versions?: Record<string, string>; logLevel?: string };
}
interface OrtTensor {
  type: string;
  dims: readonly number[];
  data: unknown;
}
/** An input as onnxruntime describes it (absent from runtimes older than 1.21). */
interface OrtValueMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}
export interface OrtSession {
  inputNames: readonly string[];
  inputMetadata?: readonly OrtValueMetadata[];
  outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>, fetches?: string[]): Promise<Record<string, OrtTensor>>;
  release?(): Promise<void>;
}

export class OrtRuntime {
  private ort?: OrtLike;

  constructor(private readonly install: Install) {}

  /** The runtime module: the backend asked for, else the installed one. */
  load(want?: string): OrtLike {
    if (this.ort) return this.ort;
    const info = this.install.info();
    const backend = want ?? info?.backend ?? "onnxruntime-node";
    if (backend !== "onnxruntime-node" && backend !== "onnxruntime-web") {
      throw new AgentFailure("bad-request", `unknown backend '${backend}'`);
    }
    try {
      this.ort = this.install.require()(backend) as OrtLike;
    } catch (e) {
      throw new AgentFailure(
        "runtime-missing",
        `cannot load ${backend} from ${this.install.dir}/node_modules: ${(e as Error).message.split("\n")[0]}`,
      );
    }
    return this.ort;
  }

  versions(backend?: string): Record<string, string> {
    return this.load(backend).env?.versions ?? {};
  }

  /** A session on the model file of `sha` with the threads and extra config the host asked for. */
  async open(path: string, sha: string, req: EvaluateOpenRequest): Promise<OrtSession> {
    const ort = this.load();
    const opts: Record<string, unknown> = {
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      logSeverityLevel: 3,
    };
    if (typeof req.threads === "number" && req.threads > 0) {
      opts.intraOpNumThreads = req.threads;
      opts.interOpNumThreads = 1;
    }
    if (req.config && typeof req.config === "object") opts.extra = req.config;
    const wasm = (ort.env as { wasm?: { numThreads?: number } }).wasm;
    if (wasm && typeof req.threads === "number" && req.threads > 0) wasm.numThreads = req.threads;
    try {
      return await ort.InferenceSession.create(path, opts);
    } catch (e) {
      throw new AgentFailure("model-load", `onnxruntime cannot load model ${sha}: ${(e as Error).message}`);
    }
  }

  /**
   * Prove the board's runtime can run a model before a deploy makes it current: create a session on its file and
   * run one inference on zeros of each input's shape (symbolic or unknown dims set to 1; skipped when an input is
   * not a tensor). `inputs` says what was fed, empty when nothing ran. Fails with `model-load` naming the model
   * (`label`) and onnxruntime's own message.
   */
  async check(path: string, label: string): Promise<{ inputs: string[]; ms: number }> {
    const ort = this.load();
    const t0 = process.hrtime.bigint();
    let session: OrtSession;
    try {
      session = await ort.InferenceSession.create(path, {
        graphOptimizationLevel: "all",
        logSeverityLevel: 3,
      });
    } catch (e) {
      throw new AgentFailure(
        "model-load",
        `onnxruntime on this board cannot load ${label}: ${firstLines(e)}`,
      );
    }
    const described: string[] = [];
    try {
      const feeds: Record<string, OrtTensor> = {};
      for (const name of session.inputNames) {
        const meta = session.inputMetadata?.find((m) => m.name === name);
        // a sequence or map input (or a runtime that does not describe inputs): loading it is all we can prove
        if (!meta?.isTensor || !meta.type)
          return { inputs: [], ms: Number(process.hrtime.bigint() - t0) / 1e6 };
        const dims = (meta.shape ?? []).map((d) => (typeof d === "number" && d >= 0 ? d : 1));
        feeds[name] = new ort.Tensor(meta.type, zeros(meta.type, dims), dims);
        described.push(`${name}:${meta.type}[${dims.join(",")}]`);
      }
      try {
        await session.run(feeds);
      } catch (e) {
        throw new AgentFailure(
          "model-load",
          `onnxruntime on this board loads ${label} but one inference on zero inputs (${described.join(" ")}) fails: ${firstLines(e)}`,
        );
      }
    } finally {
      await session.release?.();
    }
    return { inputs: described, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
  }

  /** One batch through a session: the outputs asked for (all by default) and the run call's time. */
  async run(
    session: OrtSession,
    req: EvaluateBatchRequest,
    payload: Uint8Array,
  ): Promise<{ reply: BatchReply; payload: Uint8Array }> {
    const ort = this.load();
    const feeds: Record<string, OrtTensor> = {};
    let batch = 1;
    for (const ref of req.inputs) {
      feeds[ref.name] = new ort.Tensor(ref.dtype, unpackTensor(ref, payload), ref.dims);
      batch = ref.dims[0] ?? 1;
    }
    const fetches = Array.isArray(req.outputs) && req.outputs.length ? req.outputs : undefined;
    const t0 = process.hrtime.bigint();
    let res: Record<string, OrtTensor>;
    try {
      res = fetches ? await session.run(feeds, fetches) : await session.run(feeds);
    } catch (e) {
      throw new AgentFailure("run-failed", `onnxruntime run failed: ${(e as Error).message}`);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const names = fetches ?? session.outputNames;
    const packed = packTensors(
      names.map((n) => {
        const t = res[n]!;
        return { name: n, dtype: t.type, dims: [...t.dims], data: t.data as ArrayBufferView };
      }),
    );
    return {
      reply: {
        outputs: packed.refs,
        ms,
        perSampleMs: ms / Math.max(1, batch),
        correct: countCorrect(req.labels, payload, res[names[0]!]!.data as Float32Array),
        maxRSS: peakRss(),
        runtime: "onnxruntime",
      },
      payload: packed.payload,
    };
  }
}

/** A runtime error's message without its native stack (the first two lines say what failed). */
function firstLines(e: unknown): string {
  return String((e as Error)?.message ?? e)
    .split("\n")
    .slice(0, 2)
    .join(" ")
    .trim();
}

/** A zero-filled array for an onnxruntime tensor of `type` and `dims`. */
function zeros(type: string, dims: number[]): unknown {
  const n = dims.reduce((a, d) => a * d, 1);
  switch (type) {
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int8":
      return new Int8Array(n);
    case "uint8":
    case "bool":
      return new Uint8Array(n);
    case "int16":
      return new Int16Array(n);
    case "uint16":
    case "float16":
      return new Uint16Array(n);
    case "int32":
      return new Int32Array(n);
    case "uint32":
      return new Uint32Array(n);
    case "int64":
      return new BigInt64Array(n);
    case "uint64":
      return new BigUint64Array(n);
    case "string":
      return Array.from({ length: n }, () => "");
    default:
      throw new AgentFailure("model-load", `cannot make a zero input of type ${type} to check the model`);
  }
}
