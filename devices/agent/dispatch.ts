/**
 * The agent's dispatch: one handler per request type of the protocol. The table is typed by the protocol, so a
 * request type without a handler, a handler for a type that does not exist, or a handler that answers with the
 * wrong reply fails to compile; at run time a type this agent does not know is refused with `unknown-request`.
 *
 * Board state lives in the agent's home (default ~/.qat-agent):
 *   install/<key>/agent.mjs (+ its modules), install/<key>/node_modules/...   the agent and its runtime
 *   installed.json                                                           which install is active
 *   models/, current, history.json                                           the model store (store.ts)
 *   tmp/                                                                     uploads in progress (uploads.ts)
 *
 * Board-side code: Node built-ins only; installed beside the agent as dispatch.mjs.
 */
import { resolve } from "node:path";
import { Evaluations } from "./evaluations.js";
import { collectFacts } from "./facts.js";
import type { Header } from "./framing.js";
import { Install } from "./install.js";
import {
  AGENT_VERSION,
  AgentFailure,
  CAPABILITIES,
  PROTOCOL_VERSION,
  type Replies,
  type Request,
  type RequestOf,
  type RequestType,
} from "./protocol.js";
import { OrtRuntime } from "./runtime.js";
import { ModelStore } from "./store.js";
import { Uploads } from "./uploads.js";

/** A handler's answer: the reply's fields (and a payload), or null for the request types that get no reply. */
export type Answer<K extends RequestType> = Replies[K] extends null
  ? null
  : { reply: Replies[K]; payload?: Uint8Array };

type Handlers = {
  [K in RequestType]: (req: RequestOf<K>, id: number, payload: Uint8Array) => Answer<K> | Promise<Answer<K>>;
};

export class Agent {
  readonly home: string;
  private readonly install: Install;
  private readonly store: ModelStore;
  private readonly uploads: Uploads;
  private readonly evaluations: Evaluations;
  private readonly ort: OrtRuntime;

  constructor(home: string) {
    this.home = resolve(home);
    this.install = new Install(this.home);
    this.store = new ModelStore(this.home);
    this.uploads = new Uploads(this.home);
    this.ort = new OrtRuntime(this.install);
    this.evaluations = new Evaluations(this.store, this.ort);
  }

  private readonly handlers: Handlers = {
    hello: () => ({
      reply: {
        protocol: PROTOCOL_VERSION,
        agentVersion: AGENT_VERSION,
        capabilities: CAPABILITIES,
        home: this.home,
        installDir: this.install.dir,
        installed: this.install.info(),
        pid: process.pid,
        facts: collectFacts(),
      },
    }),
    facts: () => ({ reply: { facts: collectFacts() } }),
    "put.begin": (req, id) => ({
      reply: this.uploads.begin(req, id, (kind) =>
        kind === "model"
          ? this.store.modelPath(String(req.sha256))
          : this.install.path(String(req.path ?? "")),
      ),
    }),
    "put.chunk": (req, _id, payload) => {
      this.uploads.chunk(Number(req.put), payload);
      return null;
    },
    "put.end": (req) => ({ reply: this.uploads.end(Number(req.put)) }),
    "put.abort": (req) => {
      this.uploads.abort(Number(req.put));
      return { reply: {} };
    },
    "install.commit": (req) => ({ reply: { installed: this.install.commit(req.info) } }),
    "install.prune": () => ({ reply: { removed: this.install.prune() } }),
    "runtime.check": (req) => ({
      reply: { versions: this.ort.versions(typeof req.backend === "string" ? req.backend : undefined) },
    }),
    "models.list": () => ({
      reply: { current: this.store.current(), history: this.store.history(), models: this.store.list() },
    }),
    "current.get": () => ({ reply: { current: this.store.current() } }),
    "current.set": (req) => ({ reply: this.store.setCurrent(String(req.sha256), Number(req.keep ?? 3)) }),
    rollback: () => ({ reply: this.store.rollback() }),
    "evaluate.open": async (req) => ({ reply: await this.evaluations.open(req) }),
    "evaluate.batch": (req, _id, payload) => this.evaluations.batch(req, payload),
    "evaluate.close": async (req) => ({ reply: await this.evaluations.close(req.session) }),
    "trt.build": async (req) => ({ reply: await this.evaluations.build(req) }),
    bye: () => ({ reply: {} }),
  };

  /**
   * Handle one request frame: its answer, or null when the request gets no reply. A type this agent does not
   * know fails with `unknown-request` (a newer host talking to an older agent).
   */
  async handle(header: Header, payload: Uint8Array): Promise<{ reply: object; payload?: Uint8Array } | null> {
    if (!Object.hasOwn(this.handlers, header.t)) {
      throw new AgentFailure(
        "unknown-request",
        `unknown request type '${header.t}' (agent ${AGENT_VERSION})`,
      );
    }
    // the header is the request as the host sent it; each handler reads its own fields defensively
    const handler = this.handlers[header.t as RequestType] as (
      req: Request,
      id: number,
      payload: Uint8Array,
    ) => Promise<{ reply: object; payload?: Uint8Array } | null>;
    return await handler(header as unknown as Request, Number(header.id), payload);
  }

  /** Remove this process's uploads in progress (connection lost, shutdown). */
  abortUploads(): void {
    this.uploads.abortAll();
  }
}
