/**
 * The agent's dispatch: one handler per request type of the protocol. The table is typed by the protocol, so a
 * request type without a handler, a handler for a type that does not exist, or a handler that answers with the
 * wrong reply fails to compile; at run time a type this agent does not know is refused with `unknown-request`.
 *
 * Board state lives in the agent's home (default ~/.qat-agent):
 *   install/<key>/agent.mjs (+ its modules), install/<key>/node_modules/...   the agent and its runtime
 *   installed.json                                                           which install is active
 *   models/, state.json, current                                             the model store (store.ts, state.ts)
 *   tmp/                                                                     uploads in progress (uploads.ts)
 *   lock                                                                     held during a change (lock.ts)
 *
 * Every request that changes the home (an upload's placement, deploy, rollback, install commit and prune) runs
 * holding the home lock, so two agents on one board never interleave; reads take no lock. On start the agent
 * repairs what a killed one left (store.recover), when no other agent is in the middle of a change.
 *
 * Board-side code: Node built-ins only; installed beside the agent as dispatch.mjs.
 */
import { basename, resolve } from "node:path";
import { readAgentConfig } from "./config.js";
import { Evaluations } from "./evaluations.js";
import { collectFacts } from "./facts.js";
import type { Header } from "./framing.js";
import { Install } from "./install.js";
import { HomeLock } from "./lock.js";
import {
  AGENT_VERSION,
  AgentFailure,
  CAPABILITIES,
  type CurrentSetReply,
  PROTOCOL_VERSION,
  type Replies,
  type Request,
  type RequestOf,
  type RequestType,
  type TrtBuildOptions,
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
  private readonly lock: HomeLock;

  constructor(home: string) {
    this.home = resolve(home);
    this.install = new Install(this.home);
    this.store = new ModelStore(this.home);
    this.lock = new HomeLock(this.home);
    // busy: another agent is changing the home right now, and will leave it consistent itself
    this.lock.holdIfFree("recover", () => this.store.recover());
    this.uploads = new Uploads(this.home);
    this.ort = new OrtRuntime(this.install);
    this.evaluations = new Evaluations(this.store, this.ort);
  }

  /** trtexec as configured on the board at setup; a request naming a program is refused. */
  private trtOptions<R extends TrtBuildOptions>(req: R): R {
    if (Object.hasOwn(req, "trtexec")) {
      throw new AgentFailure(
        "bad-request",
        "trtexec's location is not taken from the host: it is configured on the board (`qat device setup --trtexec PATH`)",
      );
    }
    const { trtexec } = readAgentConfig(this.home);
    return trtexec ? { ...req, trtexec } : req;
  }

  private readonly handlers: Handlers = {
    // the session gate (auth.ts) answers these before authentication; afterwards they are out of place
    "auth.hello": () => {
      throw new AgentFailure("bad-request", "this session is already authenticated");
    },
    "auth.prove": () => {
      throw new AgentFailure("bad-request", "this session is already authenticated");
    },
    hello: () => ({
      reply: {
        protocol: PROTOCOL_VERSION,
        agentVersion: AGENT_VERSION,
        capabilities: CAPABILITIES,
        home: this.home,
        installKey: basename(this.install.dir),
        installed: this.install.info(),
        pid: process.pid,
        facts: collectFacts(),
      },
    }),
    facts: () => ({ reply: { facts: collectFacts() } }),
    "put.begin": async (req, id) => {
      if (req.kind === "file") {
        return { reply: this.uploads.begin(req, id, () => this.install.path(String(req.path ?? ""))) };
      }
      const sha = String(req.sha256);
      // a model already stored is pinned now, before another agent's deploy could prune it
      return this.lock.hold("put.begin", () => {
        const reply = this.uploads.begin(req, id, () => this.store.modelPath(sha));
        if (reply.exists) this.store.pin(sha);
        return { reply };
      });
    },
    "put.chunk": (req, _id, payload) => {
      this.uploads.chunk(Number(req.put), payload);
      return null;
    },
    "put.end": (req) =>
      this.lock.hold("put.end", () => {
        const done = this.uploads.end(Number(req.put));
        if (done.path === this.store.modelPath(done.sha256)) this.store.pin(done.sha256);
        return { reply: done };
      }),
    "put.abort": (req) => {
      this.uploads.abort(Number(req.put));
      return { reply: {} };
    },
    "install.commit": (req) =>
      this.lock.hold("install.commit", () => ({ reply: { installed: this.install.commit(req.info) } })),
    "install.prune": () =>
      this.lock.hold("install.prune", () => ({ reply: { removed: this.install.prune() } })),
    "runtime.check": (req) => ({
      reply: { versions: this.ort.versions(typeof req.backend === "string" ? req.backend : undefined) },
    }),
    "models.list": () => {
      const s = this.store.view();
      return { reply: { current: s.current, history: s.history, models: this.store.list() } };
    },
    "current.get": () => ({ reply: { current: this.store.current() } }),
    "current.set": async (req) => ({ reply: await this.deploy(String(req.sha256), Number(req.keep ?? 3)) }),
    rollback: () => this.lock.hold("rollback", () => ({ reply: this.store.rollback() })),
    "evaluate.open": async (req) => ({ reply: await this.evaluations.open(this.trtOptions(req)) }),
    "evaluate.batch": (req, _id, payload) => this.evaluations.batch(req, payload),
    "evaluate.close": async (req) => ({ reply: await this.evaluations.close(req.session) }),
    "trt.build": async (req) => ({ reply: await this.evaluations.build(this.trtOptions(req)) }),
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

  /**
   * Make a stored model current — only after the board's runtime loaded it and ran one inference (outside the
   * lock: that can take seconds, and the model is pinned); when it cannot, current stays where it was.
   */
  private async deploy(sha: string, keep: number): Promise<CurrentSetReply> {
    this.store.resolve(sha);
    const name = this.store.list().find((m) => m.sha256 === sha)?.name;
    const label = `model ${sha.slice(0, 12)}${typeof name === "string" ? ` (${name})` : ""}`;
    try {
      await this.ort.check(this.store.modelPath(sha), label);
    } catch (e) {
      if (!(e instanceof AgentFailure)) throw e;
      const cur = this.store.current();
      throw new AgentFailure(
        e.code,
        `${e.message} — not deployed; current stays ${cur ? cur.slice(0, 12) : "unset"}`,
      );
    }
    return this.lock.hold("current.set", () => this.store.setCurrent(sha, keep));
  }

  /** Remove this process's uploads in progress and its pins (connection lost, shutdown). */
  abortUploads(): void {
    this.uploads.abortAll();
    this.store.unpinAll();
  }
}
