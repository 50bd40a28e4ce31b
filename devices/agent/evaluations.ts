/**
 * Evaluation sessions: a model opened on the board (an onnxruntime session, or a TensorRT engine run by trtexec)
 * that the host sends batches through, until it closes it.
 *
 * Board-side code: Node built-ins only; installed beside the agent as evaluations.mjs.
 */
import { join } from "node:path";
import {
  AgentFailure,
  type BatchReply,
  type EvaluateBatchRequest,
  type EvaluateOpenReply,
  type EvaluateOpenRequest,
  type TrtBuildRequest,
  type TrtEngineInfo,
} from "./protocol.js";
import { type OrtRuntime, type OrtSession, peakRss } from "./runtime.js";
import type { ModelStore } from "./store.js";
import { buildEngine, runEngine, type TrtSession } from "./tensorrt.js";

type Session =
  | { kind: "ort"; session: OrtSession; sha256: string; runs: number }
  | { kind: "tensorrt"; trt: TrtSession; sha256: string; runs: number };

export class Evaluations {
  private sessions = new Map<number, Session>();
  private nextSession = 1;

  constructor(
    private readonly store: ModelStore,
    private readonly ort: OrtRuntime,
  ) {}

  async open(req: EvaluateOpenRequest): Promise<EvaluateOpenReply> {
    const sha = this.store.resolve(String(req.model ?? "current"));
    if (req.runtime === "tensorrt") return this.openEngine(sha, req);
    if (req.runtime !== undefined && req.runtime !== "onnxruntime") {
      throw new AgentFailure(
        "bad-request",
        `unknown runtime '${String(req.runtime)}' (onnxruntime or tensorrt)`,
      );
    }
    const session = await this.ort.open(this.store.modelPath(sha), sha, req);
    const id = this.nextSession++;
    this.sessions.set(id, { kind: "ort", session, sha256: sha, runs: 0 });
    return {
      session: id,
      sha256: sha,
      inputs: [...session.inputNames],
      outputs: [...session.outputNames],
      runtime: "onnxruntime",
    };
  }

  private async openEngine(sha: string, req: EvaluateOpenRequest): Promise<EvaluateOpenReply> {
    const b = await buildEngine(this.store.modelPath(sha), sha, req);
    const id = this.nextSession++;
    const trt: TrtSession = {
      trtexec: b.trtexec,
      engine: b.engine,
      shapes: b.shapes,
      inputs: b.inputs,
      iterations: typeof req.iterations === "number" && req.iterations >= 1 ? Math.floor(req.iterations) : 10,
      peakRss: 0,
    };
    this.sessions.set(id, { kind: "tensorrt", trt, sha256: sha, runs: 0 });
    return {
      session: id,
      sha256: sha,
      inputs: b.inputs.map((i) => i.name),
      outputs: [],
      runtime: "tensorrt",
      tensorrt: {
        version: b.version,
        trtexec: b.trtexec,
        engine: b.engine,
        cached: b.cached,
        buildMs: b.buildMs,
        argv: b.argv,
      },
    };
  }

  async batch(
    req: EvaluateBatchRequest,
    payload: Uint8Array,
  ): Promise<{ reply: BatchReply; payload: Uint8Array }> {
    const s = this.sessions.get(Number(req.session));
    if (!s) throw new AgentFailure("bad-request", `no evaluation session ${String(req.session)}`);
    if (s.kind === "tensorrt") return runEngine(s, req, payload, join(this.store.home, "tmp"));
    const r = await this.ort.run(s.session, req, payload);
    s.runs++;
    return r;
  }

  async close(session: number): Promise<{ runs: number; maxRSS: number }> {
    const s = this.sessions.get(Number(session));
    this.sessions.delete(Number(session));
    if (s?.kind === "ort" && s.session.release) await s.session.release();
    const maxRSS = s?.kind === "tensorrt" ? s.trt.peakRss : peakRss();
    return { runs: s?.runs ?? 0, maxRSS };
  }

  /** Build (or find) the TensorRT engine of a stored model without opening a session. */
  async build(req: TrtBuildRequest): Promise<TrtEngineInfo & { sha256: string }> {
    const sha = this.store.resolve(String(req.model ?? "current"));
    const b = await buildEngine(this.store.modelPath(sha), sha, req);
    return { sha256: sha, ...b };
  }
}
