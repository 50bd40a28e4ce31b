import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";

/** A real OpenSSH server on 127.0.0.1 with its own config, host key and authorized_keys in `dir`. */
export interface Sshd {
  port: number;
  pid: number;
  dir: string;
  user: string;
  /** The client key that sshd accepts, and one it does not know. */
  userKey: string;
  wrongKey: string;
  hostKeyPub: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

function keygen(path: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "qat-test", "-f", path]);
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((res) => {
      const c = createConnection({ host: "127.0.0.1", port }, () => {
        c.destroy();
        res(true);
      });
      c.once("error", () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not listen on ${port}: ${log()}`);
}

export async function startSshd(dir: string): Promise<Sshd> {
  mkdirSync(dir, { recursive: true });
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const hostKey = join(dir, "host_ed25519");
  const userKey = join(dir, "user_ed25519");
  const wrongKey = join(dir, "wrong_ed25519");
  keygen(hostKey);
  keygen(userKey);
  keygen(wrongKey);
  execFileSync("cp", [`${userKey}.pub`, join(dir, "authorized_keys")]);
  const port = await freePort();
  const user = userInfo().username;
  const config = join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      `AllowUsers ${user}`,
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (b: Buffer) => {
    log = (log + b.toString()).slice(-4000);
  });
  await waitForPort(port, child, () => log);
  const { readFileSync } = await import("node:fs");
  return {
    port,
    pid: child.pid!,
    dir,
    user,
    userKey,
    wrongKey,
    hostKeyPub: readFileSync(`${hostKey}.pub`, "utf8"),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise((r) => child.once("exit", r));
      process.kill(child.pid!, "SIGTERM");
      await done;
    },
  };
}
