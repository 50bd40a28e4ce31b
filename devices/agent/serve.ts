/**
 * A session's loop: frames in, one at a time through the agent's dispatch, replies out — over stdin/stdout (SSH
 * exec channel, local child process) or one serial link session. This is the one place a session's frames are
 * dispatched.
 *
 * Board-side code: Node built-ins only; installed beside the agent as serve.mjs.
 */
import { SessionGate } from "./auth.js";
import { Agent } from "./dispatch.js";
import { encodeFrame, type Frame, FrameDecoder, type Header } from "./framing.js";
import { AgentFailure, type ErrorHeader } from "./protocol.js";

/**
 * Answer one request frame: its reply, an error reply naming the failure's code, or nothing (put.chunk). Requests
 * are answered one at a time, in the order they arrived.
 */
export async function answer(
  agent: Agent,
  f: Frame,
): Promise<{ header: Header; payload?: Uint8Array } | null> {
  const id = f.header.id;
  try {
    const out = await agent.handle(f.header, f.payload);
    return out ? { header: { t: "ok", id, ...out.reply }, payload: out.payload } : null;
  } catch (e) {
    const code = e instanceof AgentFailure ? e.code : "internal";
    const error: ErrorHeader = { t: "error", id, code, message: (e as Error).message };
    return { header: { ...error } };
  }
}

export interface ServeOptions {
  /** The only session of this process (stdin/stdout): signals and a broken output end the process. */
  standalone?: boolean;
  /** The agent's log (refused frames, failed authentication); default stderr. */
  log?: (message: string) => void;
}

/**
 * Run the agent on a byte stream until the host says bye or the stream ends. The session starts with the
 * handshake of auth.ts: until the host has proved it holds the device secret, every other frame is refused and
 * counted, and a failed proof ends the session.
 */
export async function serve(
  home: string,
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  opts: ServeOptions = {},
): Promise<void> {
  const standalone = opts.standalone ?? true;
  const log = opts.log ?? ((m: string) => process.stderr.write(`qat-agent: ${m}\n`));
  const gate = new SessionGate(home, log);
  // made once the host has authenticated: an unauthenticated peer does not get so far as the agent's recovery
  let agent: Agent | undefined;
  const decoder = new FrameDecoder();
  let chain: Promise<void> = Promise.resolve();
  let done = false;
  const write = (header: Header, payload?: Uint8Array): void => {
    output.write(encodeFrame(header, payload));
  };
  const finish = (): void => {
    if (done) return;
    done = true;
    agent?.abortUploads();
  };
  // one of many sessions (serial): the caller handles signals, and a broken stream ends only this session
  if (standalone) {
    for (const sig of ["SIGHUP", "SIGTERM", "SIGINT", "SIGPIPE"] as const) {
      process.on(sig, () => {
        finish();
        process.exit(sig === "SIGPIPE" ? 0 : 1);
      });
    }
  }
  output.on("error", () => {
    finish();
    if (standalone) process.exit(0);
  });
  await new Promise<void>((resolveDone) => {
    input.on("data", (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        write({ t: "error", code: "bad-frame", message: (e as Error).message });
        finish();
        resolveDone();
        return;
      }
      for (const f of frames) {
        chain = chain.then(async () => {
          if (done) return;
          if (!gate.authenticated) {
            const g = gate.answer(f.header);
            if (g.header) write(g.header);
            if (g.end) {
              finish();
              resolveDone();
            }
            return;
          }
          agent ??= new Agent(home);
          const out = await answer(agent, f);
          if (out) {
            // a reply over the frame limit (e.g. huge layer probes) must not reject the chain: later requests
            // would never be answered; the host gets a named error instead
            try {
              write(out.header, out.payload);
            } catch (e) {
              const id = (f.header as { id?: unknown }).id;
              write({ t: "error", id, code: "reply-too-large", message: (e as Error).message } as Header);
            }
          }
          if (f.header.t === "bye" && out?.header.t === "ok") {
            finish();
            resolveDone();
          }
        });
      }
    });
    input.on("end", () => {
      chain.then(() => {
        finish();
        resolveDone();
      });
    });
    input.on("error", () => {
      finish();
      resolveDone();
    });
  });
  await chain;
  if (gate.refused) log(`session over: ${gate.refused} frame(s) refused before authentication`);
}
