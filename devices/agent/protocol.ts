/**
 * The agent protocol, typed: every request the host may send, its exact fields, and the reply it gets. Both ends
 * compile against this module — the host's AgentClient (`request()` takes a `Request` and returns the `Replies`
 * entry of its type) and the board's dispatch (a handler per request type, checked to be complete) — so a
 * misspelled or unhandled message type fails `tsc` on either side.
 *
 * On the wire every message is one frame (framing.ts) whose JSON header is the request with its id:
 *   host → board   { t: "<type>", id, ...fields }           (+ payload: put.chunk bytes, evaluate.batch tensors)
 *   board → host   { t: "ok", id, ...reply }                (+ payload: evaluate.batch outputs)
 *                  { t: "error", id?, code, message }       (no id: the stream itself broke)
 * `put.chunk` has no reply: chunks stream without round trips and a failure shows up at `put.end`.
 *
 * Board-side code: this module has no imports and is installed beside the agent as protocol.mjs.
 */

export const PROTOCOL_VERSION = 1;
export const AGENT_VERSION = "0.1.0";
export const CAPABILITIES = [
  "facts",
  "put",
  "models",
  "current",
  "rollback",
  "evaluate",
  "install",
  "tensorrt",
  "auth",
];

// ---------------------------------------------------------------------------------------------------------------
// Shapes carried inside messages

/** What the board says about itself (hello, facts, `agent.mjs --facts`). */
export interface BoardFacts {
  platform: string;
  arch: string;
  machine: string;
  node: string;
  glibc: string | null;
  memTotal: number;
  cpus: number;
  cpuinfo: string | null;
  deviceTreeModel: string | null;
  nvTegraRelease: string | null;
  hostname: string;
  kernel: string;
}

/** The committed install (installed.json): written last by setup, so a half-done setup is never taken for one. */
export interface InstalledInfo {
  key: string;
  agentVersion: string;
  agentSha256: string;
  backend: string;
  runtimeVersion: string;
  arch: string;
  /** No longer recorded (the wire never learns install paths); older installs may still carry it. */
  installDir?: string;
  installedAt?: string;
}

/** A tensor's place in a frame's payload. */
export interface TensorRef {
  name: string;
  dtype: string;
  dims: number[];
  offset: number;
  length: number;
}

export interface ModelEntry {
  sha256: string;
  size: number;
  name?: string | null;
  uploadedAt?: string;
  storedAt?: string;
}

/** A TensorRT engine's input: name and dims, batch included. */
export interface TrtInput {
  name: string;
  dims: number[];
}

/** How the board builds a TensorRT engine with trtexec. */
export interface TrtBuildOptions {
  /**
   * Not sent: trtexec's location is configured on the board at setup (`qat device setup --trtexec PATH`, kept in
   * the agent's agent.json) and never taken from the wire. The host refuses a request that sets it.
   */
  trtexec?: string;
  inputs?: TrtInput[];
  /** Pass the inputs' dims as --shapes (models with dynamic inputs). */
  dynamic?: boolean;
  int8?: boolean;
}

/** What the board says about a TensorRT engine it built or found. */
export interface TrtEngineInfo {
  version: string | null;
  trtexec: string;
  engine: string;
  cached: boolean;
  buildMs: number;
  argv: string[];
}

/** How to run a model on the board. */
export interface EvaluationOptions extends TrtBuildOptions {
  threads?: number;
  config?: Record<string, unknown>;
  /** onnxruntime (the installed backend; default) or tensorrt (trtexec on the board). */
  runtime?: "onnxruntime" | "tensorrt";
  /** TensorRT: inference iterations per batch (the latency is their median). */
  iterations?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests (host → board)

/** The first frame of every session: the host's fresh nonce (auth.ts). */
export interface AuthHelloRequest {
  t: "auth.hello";
  protocol: number;
  nonce: string;
}
/** The host's proof over both nonces. */
export interface AuthProveRequest {
  t: "auth.prove";
  proof: string;
}
export interface HelloRequest {
  t: "hello";
  protocol: number;
}
export interface FactsRequest {
  t: "facts";
}
/**
 * Start an upload: to the model store (kind model) or, kind file, to one of the runtime's files in the install
 * folder (a fixed list of names: install.ts). Files are written 0644; no mode comes from the wire.
 */
export interface PutBeginRequest {
  t: "put.begin";
  kind: "model" | "file";
  size: number;
  sha256: string;
  name?: string;
  path?: string;
  /** Keep what arrived when the link drops, and continue from there on the next connection (serial links). */
  resume?: boolean;
}
/** Bytes of upload `put` (the id of its put.begin) in the payload. No reply. */
export interface PutChunkRequest {
  t: "put.chunk";
  put: number;
}
export interface PutEndRequest {
  t: "put.end";
  put: number;
}
export interface PutAbortRequest {
  t: "put.abort";
  put: number;
}
export interface InstallCommitRequest {
  t: "install.commit";
  info: InstalledInfo;
}
export interface InstallPruneRequest {
  t: "install.prune";
}
export interface RuntimeCheckRequest {
  t: "runtime.check";
  backend?: string;
}
export interface ModelsListRequest {
  t: "models.list";
}
export interface CurrentGetRequest {
  t: "current.get";
}
export interface CurrentSetRequest {
  t: "current.set";
  sha256: string;
  /** How many versions to keep (default 3). */
  keep?: number;
}
export interface RollbackRequest {
  t: "rollback";
}
/** Open an evaluation session on a stored model (a sha256, or "current"). */
export interface EvaluateOpenRequest extends EvaluationOptions {
  t: "evaluate.open";
  model: string;
}
/** One batch: input tensors (and int64 labels) in the payload. */
export interface EvaluateBatchRequest {
  t: "evaluate.batch";
  session: number;
  inputs: TensorRef[];
  labels?: TensorRef;
  outputs?: string[];
}
export interface EvaluateCloseRequest {
  t: "evaluate.close";
  session: number;
}
export interface TrtBuildRequest extends TrtBuildOptions {
  t: "trt.build";
  model: string;
}
export interface ByeRequest {
  t: "bye";
}

export type Request =
  | AuthHelloRequest
  | AuthProveRequest
  | HelloRequest
  | FactsRequest
  | PutBeginRequest
  | PutChunkRequest
  | PutEndRequest
  | PutAbortRequest
  | InstallCommitRequest
  | InstallPruneRequest
  | RuntimeCheckRequest
  | ModelsListRequest
  | CurrentGetRequest
  | CurrentSetRequest
  | RollbackRequest
  | EvaluateOpenRequest
  | EvaluateBatchRequest
  | EvaluateCloseRequest
  | TrtBuildRequest
  | ByeRequest;

export type RequestType = Request["t"];
export type RequestOf<T extends RequestType> = Extract<Request, { t: T }>;

// ---------------------------------------------------------------------------------------------------------------
// Replies (board → host)

export interface AuthHelloReply {
  protocol: number;
  agentVersion: string;
  nonce: string;
  proof: string;
}

export interface HelloReply {
  protocol: number;
  agentVersion: string;
  capabilities: string[];
  home: string;
  /** The install the agent runs from (its key, not its path: the wire never learns where files live). */
  installKey: string;
  installed: InstalledInfo | null;
  pid: number;
  facts: BoardFacts;
}

export type PutBeginReply = { exists: true; path: string } | { exists: false; offset: number };

export interface ModelList {
  current: string | null;
  history: string[];
  models: ModelEntry[];
}

export interface CurrentSetReply {
  previous: string | null;
  current: string;
  history: string[];
  removed: string[];
}

export interface RollbackReply {
  from: string | null;
  to: string;
  history: string[];
}

export interface EvaluateOpenReply {
  session: number;
  sha256: string;
  inputs: string[];
  outputs: string[];
  runtime: "onnxruntime" | "tensorrt";
  tensorrt?: TrtEngineInfo;
}

/** A batch's outputs (tensors in the payload) and what it cost on the board. */
export interface BatchReply {
  outputs: TensorRef[];
  /** The batch's time on the board: onnxruntime's run call, or trtexec's median "Latency" (TensorRT). */
  ms: number;
  perSampleMs: number;
  /** Top-1 hits against the labels sent along (null without labels). */
  correct: number | null;
  maxRSS: number;
  runtime: "onnxruntime" | "tensorrt";
  /** TensorRT: trtexec's median "GPU Compute Time" and the wall time of the whole trtexec call. */
  gpuComputeMs?: number | null;
  wallMs?: number;
}

/** The reply to each request type; null: no reply is sent. */
export interface Replies {
  "auth.hello": AuthHelloReply;
  /** How many frames the session refused before the host proved itself. */
  "auth.prove": { refused: number };
  hello: HelloReply;
  facts: { facts: BoardFacts };
  "put.begin": PutBeginReply;
  "put.chunk": null;
  "put.end": { path: string; sha256: string };
  "put.abort": Record<string, never>;
  "install.commit": { installed: InstalledInfo };
  "install.prune": { removed: string[] };
  "runtime.check": { versions: Record<string, string> };
  "models.list": ModelList;
  "current.get": { current: string | null };
  "current.set": CurrentSetReply;
  rollback: RollbackReply;
  "evaluate.open": EvaluateOpenReply;
  "evaluate.batch": BatchReply;
  "evaluate.close": { runs: number; maxRSS: number };
  "trt.build": TrtEngineInfo & { sha256: string };
  bye: Record<string, never>;
}

/** Indexing by RequestType also checks that every request type has a reply entry. */
export type ReplyFor<T extends RequestType> = Replies[T];

/** Request types the board answers, and those it does not (sent without waiting: put.chunk). */
export type AskedType = { [K in RequestType]: Replies[K] extends null ? never : K }[RequestType];
export type PostedType = Exclude<RequestType, AskedType>;

/** The header of a successful reply as it arrives. */
export type OkHeader<T extends AskedType> = ReplyFor<T> & { t: "ok"; id: number };

/** The header of a failed request (or, without an id, of a broken stream). */
export interface ErrorHeader {
  t: "error";
  id?: number;
  code: string;
  message: string;
}

/** A request the board refuses: `code` goes into the error reply for the host to act on. */
export class AgentFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
