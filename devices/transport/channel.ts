import type { Readable, Writable } from "node:stream";

/** A process on the board: its standard streams and its end. Every transport gives this same shape. */
export interface Channel {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves when the process has exited (code null when killed by a signal or the link dropped). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Stop the process (or drop its channel when the transport cannot signal). */
  kill(): void;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
}

export interface ExecOptions {
  /** Bytes written to the command's stdin, then closed. */
  input?: Uint8Array;
  /** Give up (and kill the command) after this long. Default 120 s. */
  timeoutMs?: number;
}

/** A way to reach a board: run commands there, and get byte streams to them. */
export interface Transport {
  readonly kind: "local" | "emulated" | "ssh" | "serial";
  /** What the board is, for messages: "local", "emulated:rpi4", "ssh://pi@10.0.0.7:22". */
  readonly label: string;
  /** The argv prefix that runs Node.js on the board. */
  readonly node: string[];
  /** The agent's home on the board (absolute, or relative to the login folder). */
  readonly home: string;
  /**
   * The device secret every agent session proves (agent/auth.ts): from the host's registry (openDevice), or set by
   * `setupDevice`, which writes it to the board. Local and emulated boards fall back to the one in their home.
   */
  secret?: Uint8Array;
  /** Start a command; argv is passed as separate arguments (quoted for the remote shell where there is one). */
  spawn(argv: string[]): Promise<Channel>;
  /** Run a command to completion and collect its output. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Close politely. */
  close(): Promise<void>;
  /** Drop the link at once (as a pulled cable would): processes see their streams end. */
  abort(): void;
}

/** Run a command through `spawn` and collect its output. */
export async function execVia(
  t: Pick<Transport, "spawn" | "label">,
  argv: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const ch = await t.spawn(argv);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  ch.stdout.on("data", (b: Buffer) => out.push(b));
  ch.stderr.on("data", (b: Buffer) => err.push(b));
  ch.stdin.on("error", () => {
    // the command may exit without reading its input
  });
  ch.stdin.end(
    opts.input ? Buffer.from(opts.input.buffer, opts.input.byteOffset, opts.input.byteLength) : undefined,
  );
  const timeoutMs = opts.timeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((res) => {
    timer = setTimeout(() => res("timeout"), timeoutMs);
  });
  const r = await Promise.race([ch.exited, timedOut]);
  clearTimeout(timer);
  if (r === "timeout") {
    ch.kill();
    throw new Error(`${t.label}: '${argv[0]}' did not finish within ${timeoutMs} ms`);
  }
  // let the streams drain what arrived before the exit status
  await Promise.all([endOf(ch.stdout), endOf(ch.stderr)]);
  return { ...r, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}

function endOf(s: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> {
  if (s.readableEnded || s.destroyed) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(res, 2000);
    const done = (): void => {
      clearTimeout(t);
      res();
    };
    s.once("end", done);
    s.once("close", done);
    s.once("error", done);
  });
}

const SAFE = /^[A-Za-z0-9_/.,:=+@%^-]+$/;

/** One argument quoted for a POSIX shell: safe characters as they are, anything else in single quotes. */
export function shellQuote(arg: string): string {
  if (arg !== "" && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** An argv as one command line for a POSIX shell (what an SSH exec request carries). */
export function shellJoin(argv: string[]): string {
  return argv.map(shellQuote).join(" ");
}
