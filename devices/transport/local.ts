import { type ChildProcess, spawn } from "node:child_process";
import { homedir } from "node:os";
import { join } from "node:path";
import { readSecret } from "../agent/auth.js";
import { type Channel, type ExecOptions, type ExecResult, execVia, type Transport } from "./channel.js";

export interface LocalTransportOptions {
  /** The argv prefix that runs Node.js (default: this process's node). */
  node?: string[];
  /** The agent's home (default ~/.qat-agent). */
  home?: string;
  /** Label in messages (default "local"). */
  label?: string;
  /** Extra environment for the processes. */
  env?: Record<string, string>;
  kind?: "local" | "emulated";
  /** The device secret (default: the one in the agent's home, which is on this machine). */
  secret?: Uint8Array;
}

/** The host itself as a board: commands are child processes (no shell in between). */
export class LocalTransport implements Transport {
  readonly kind: "local" | "emulated";
  readonly label: string;
  readonly node: string[];
  readonly home: string;
  private readonly env: Record<string, string> | undefined;
  private readonly children = new Set<ChildProcess>();
  private given?: Uint8Array;

  constructor(opts: LocalTransportOptions = {}) {
    this.kind = opts.kind ?? "local";
    this.label = opts.label ?? "local";
    this.node = opts.node ?? [process.execPath];
    this.home = opts.home ?? join(homedir(), ".qat-agent");
    this.env = opts.env;
    this.given = opts.secret;
  }

  /**
   * The device secret: the registry's when there is one, else the board's own auth.key — the board's home is a
   * folder of this machine, readable by the same user (a registry secret that differs still fails the handshake).
   */
  get secret(): Uint8Array | undefined {
    return this.given ?? readSecret(this.home) ?? undefined;
  }

  set secret(s: Uint8Array | undefined) {
    this.given = s;
  }

  async spawn(argv: string[]): Promise<Channel> {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["pipe", "pipe", "pipe"],
      env: this.env ? { ...process.env, ...this.env } : process.env,
    });
    this.children.add(child);
    const exited = new Promise<{ code: number | null; signal: string | null }>((res) => {
      child.once("error", (e: NodeJS.ErrnoException) => {
        // the program could not be started: shaped like a shell's "command not found"
        child.stderr?.emit("data", Buffer.from(`${argv[0]}: ${e.message}\n`));
        res({ code: e.code === "ENOENT" ? 127 : 126, signal: null });
      });
      child.once("close", (code, signal) => res({ code, signal }));
    }).finally(() => this.children.delete(child));
    return {
      stdin: child.stdin!,
      stdout: child.stdout!,
      stderr: child.stderr!,
      exited,
      kill: () => {
        child.kill("SIGKILL");
      },
    };
  }

  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return execVia(this, argv, opts);
  }

  async close(): Promise<void> {
    for (const c of this.children) c.stdin?.end();
  }

  abort(): void {
    for (const c of this.children) c.kill("SIGKILL");
  }
}
