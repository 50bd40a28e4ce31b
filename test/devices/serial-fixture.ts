/**
 * Real parts for serial tests: socat pseudo-terminal pairs, and the qat agent listening on one end (the native
 * agent, or the arm64 agent under qemu). Every process is stopped by its PID.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export interface PtyPair {
  a: string;
  b: string;
  stop(): Promise<void>;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise<void>((r) => c.once("exit", () => r()));
  c.kill("SIGTERM");
  const t = setTimeout(() => c.kill("SIGKILL"), 3000);
  await gone;
  clearTimeout(t);
}

/** `socat -d -d pty,raw,echo=0,link=A pty,raw,echo=0,link=B`: two linked ptys. */
export async function ptyPair(dir: string, name: string): Promise<PtyPair> {
  const a = join(dir, `${name}-a`);
  const b = join(dir, `${name}-b`);
  const c = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  c.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  for (let i = 0; i < 200 && !(existsSync(a) && existsSync(b)); i++) {
    if (c.exitCode !== null) throw new Error(`socat exited: ${err}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!(existsSync(a) && existsSync(b))) {
    await stopChild(c);
    throw new Error(`socat did not create ${a} and ${b}: ${err}`);
  }
  return { a, b, stop: () => stopChild(c) };
}

export interface RunningAgent {
  stderr(): string;
  stop(): Promise<void>;
  exited: Promise<number | null>;
}

/** Start `node agent.mjs --home H --serial TTY --baud N` (node may be the emulated board's node script). */
export async function startSerialAgent(
  node: string,
  agent: string,
  home: string,
  tty: string,
  baud: number,
): Promise<RunningAgent> {
  const c = spawn(node, [agent, "--home", home, "--serial", tty, "--baud", String(baud)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  c.stderr!.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-20000);
  });
  const exited = new Promise<number | null>((r) => c.once("exit", (code) => r(code)));
  for (let i = 0; i < 600 && !/listening on/.test(err); i++) {
    if (c.exitCode !== null) throw new Error(`the agent exited: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!/listening on/.test(err)) {
    await stopChild(c);
    throw new Error(`the agent did not start listening on ${tty}: ${err}`);
  }
  return { stderr: () => err, stop: () => stopChild(c), exited };
}
