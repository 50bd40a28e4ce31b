/**
 * Authenticated agent sessions on the stdio transports (local child process, ssh exec channel through a real
 * loopback sshd): frames before the handshake are refused and counted, a replayed handshake fails, the wire chooses
 * no program, no executable and no path outside the runtime's files; a wrong device secret over ssh fails with a
 * clear error naming the board; a board set up before authentication existed says to run setup again (exit 2).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSecret } from "../../devices/agent/auth.js";
import { allowedInstallFile } from "../../devices/agent/install.js";
import { AgentClient } from "../../devices/client.js";
import { readDeviceSecret, secretPath } from "../../devices/device-secrets.js";
import { AgentNotInstalledError, AuthError, DeviceError, RemoteError } from "../../devices/errors.js";
import { deviceModels } from "../../devices/inspect.js";
import { setupBoard } from "../../devices/prepare-board.js";
import { addDevice } from "../../devices/registry.js";
import { runtimeFiles, serialFiles } from "../../devices/runtime-files.js";
import { authenticate } from "../../devices/session-auth.js";
import { agentPath, connectAgent, installKey, setupDevice } from "../../devices/setup.js";
import type { Channel, Transport } from "../../devices/transport/channel.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { connectSsh } from "../../devices/transport/ssh.js";
import { boardFiles, expectWrongSecret } from "./auth-fixture.js";
import { type Sshd, startSshd } from "./sshd.js";

const dir = mkdtempSync(join(tmpdir(), "qat-auth-"));
const home = join(dir, "home");
const t = new LocalTransport({ home, label: "bench-pi" });
let key: string;
let sshd: Sshd | undefined;

/** Start the installed agent and keep what the host writes to it (for a replay) and its log. */
async function rawSession(): Promise<{
  client: AgentClient;
  sent: Buffer[];
  log: () => string;
  ch: Channel;
}> {
  const ch = await t.spawn([...t.node, agentPath(t, key), "--home", home]);
  const sent: Buffer[] = [];
  const tee = new PassThrough();
  tee.on("data", (b: Buffer) => {
    sent.push(Buffer.from(b));
    ch.stdin.write(b);
  });
  tee.on("end", () => ch.stdin.end());
  let log = "";
  ch.stderr.on("data", (b: Buffer) => {
    log += b.toString();
  });
  const client = new AgentClient({ ...ch, stdin: tee }, "bench-pi");
  return { client, sent, log: () => log, ch };
}

beforeAll(async () => {
  await setupDevice(t, { trtexec: "/opt/nvidia/tensorrt/bin/trtexec" });
  key = await installKey();
}, 120_000);

afterAll(async () => {
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("the agent's session gate (local child process)", () => {
  it("setup gives the board a 32-byte secret and a configuration, both mode 0600", () => {
    expect(readSecret(home)).toHaveLength(32);
    expect(statSync(join(home, "auth.key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, "agent.json")).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(home, "agent.json"), "utf8"))).toEqual({
      trtexec: "/opt/nvidia/tensorrt/bin/trtexec",
    });
  });

  it("refuses and counts every frame before the handshake: the four-frame attack and an unauthenticated put", async () => {
    const before = boardFiles(home);
    const { client, log, ch } = await rawSession();
    const refusals: string[] = [];
    const ask = async (p: Promise<unknown>): Promise<void> => {
      const e = await p.then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(RemoteError);
      refusals.push(`${(e as RemoteError).code}: ${(e as Error).message}`);
    };
    await ask(client.request({ t: "hello", protocol: 1 }));
    const begin = {
      t: "put.begin",
      kind: "file",
      path: "evil.sh",
      mode: 0o755,
      size: 5,
      sha256: "0".repeat(64),
    };
    await ask(client.request(begin as never));
    await client.post({ t: "put.chunk", put: 2 }, Buffer.from("id\n"));
    await ask(client.request({ t: "trt.build", model: "current", trtexec: "/bin/sh" } as never));
    await ask(client.request({ t: "put.begin", kind: "model", size: 1, sha256: "1".repeat(64) }));
    expect(refusals).toHaveLength(4);
    for (const r of refusals)
      expect(r).toMatch(/^unauthenticated: .*refused: this session has not authenticated/);
    ch.stdin.end();
    await ch.exited;
    expect(log()).toMatch(/refused 'put\.chunk' before authentication \(3 refused in this session\)/);
    expect(log()).toMatch(/5 frame\(s\) refused before authentication/);
    expect(boardFiles(home)).toEqual(before);
  });

  it("a recorded handshake replayed to a new session fails: the board's nonce is new", async () => {
    const first = await rawSession();
    await authenticate(first.client, readSecret(home)!);
    await first.client.close();
    const recorded = Buffer.concat(first.sent);
    const second = await rawSession();
    const replies: string[] = [];
    const { FrameDecoder } = await import("../../devices/agent/framing.js");
    const dec = new FrameDecoder();
    second.ch.stdout.on("data", (b: Buffer) => {
      for (const f of dec.push(b)) replies.push(`${f.header.t}:${String(f.header.code ?? "")}`);
    });
    second.ch.stdin.write(recorded);
    await second.ch.exited;
    // auth.hello is answered (a fresh nonce), the replayed proof is refused, and the session ends there
    expect(replies).toEqual(["ok:", "error:auth-failed"]);
    expect(second.log()).toMatch(/authentication failed/);
  });

  it("after authentication the wire still chooses no program, no mode, no path outside the runtime's files", async () => {
    const { client } = await connectAgent(t);
    const e1 = await client
      .request({ t: "trt.build", model: "current", trtexec: "/bin/sh" })
      .catch((e: unknown) => e);
    expect((e1 as RemoteError).code).toBe("bad-request");
    expect((e1 as Error).message).toMatch(/configured on the board/);
    const e2 = await client
      .put(Buffer.from("#!/bin/sh\n"), { kind: "file", path: "evil.sh" })
      .catch((e: unknown) => e);
    expect((e2 as RemoteError).code).toBe("bad-request");
    expect((e2 as Error).message).toMatch(/refusing file 'evil\.sh'/);
    const e3 = await client
      .put(Buffer.from("x"), { kind: "file", path: "node_modules/onnxruntime-node/../../agent.mjs" })
      .catch((e: unknown) => e);
    expect((e3 as RemoteError).code).toBe("bad-request");
    // a runtime file with a mode field sent anyway lands 0644
    const bytes = Buffer.from("module.exports = 1;\n");
    const { createHash } = await import("node:crypto");
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const b = (
      await client.request({
        t: "put.begin",
        kind: "file",
        path: "node_modules/debug/extra.js",
        size: bytes.length,
        sha256,
        mode: 0o755,
      } as never)
    ).header as { id: number };
    await client.post({ t: "put.chunk", put: b.id }, bytes);
    const end = await client.request({ t: "put.end", put: b.id });
    expect(statSync(join(home, "install", key, "node_modules/debug/extra.js")).mode & 0o777).toBe(0o644);
    expect(end.header.sha256).toBe(sha256);
    // the client itself refuses to name a program
    const e4 = await client.buildEngine("current", { trtexec: "/bin/sh" }).catch((e: unknown) => e);
    expect(e4).toBeInstanceOf(DeviceError);
    expect((e4 as DeviceError).exitCode).toBe(2);
    expect((e4 as DeviceError).hint).toMatch(/qat device setup bench-pi --trtexec \/bin\/sh/);
    const hello = await client.hello();
    expect(JSON.stringify(hello)).not.toContain(join(home, "install"));
    await client.close();
  });

  it("every file setup pushes is on the board's fixed list, and little else is", async () => {
    const pushed = [
      ...(await runtimeFiles(process.arch)),
      ...(await serialFiles(process.arch, "onnxruntime-node")),
    ];
    expect(pushed.length).toBeGreaterThan(10);
    for (const f of pushed) expect(allowedInstallFile(f.path), f.path).toBe(true);
    for (const bad of [
      "agent.mjs",
      "serve.mjs",
      "../x",
      "node_modules/evil/index.js",
      "node_modules/debug/../../x",
      "node_modules/debug/.hidden",
      "/etc/passwd",
    ]) {
      expect(allowedInstallFile(bad), bad).toBe(false);
    }
  });
});

describe("boards set up before authentication, and re-keying (registry)", () => {
  it("a board without a secret says to run setup again (exit 2); setup fixes it; --rekey replaces it", async () => {
    const registry = join(dir, "devices.json");
    const oldHome = join(dir, "old-home");
    await setupDevice(new LocalTransport({ home: oldHome }));
    unlinkSync(join(oldHome, "auth.key")); // as a board set up before this change
    addDevice({ name: "old-pi", uri: "local", home: oldHome }, { path: registry });
    const err = await deviceModels({ device: "old-pi", registry }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentNotInstalledError);
    expect((err as AgentNotInstalledError).exitCode).toBe(2);
    expect((err as AgentNotInstalledError).hint).toBe("run `qat device setup old-pi` again");
    const s = await setupBoard({ device: "old-pi", registry });
    expect(s.secret).toBe("created");
    const stored = readDeviceSecret(registry, "old-pi")!;
    expect(stored.equals(readSecret(oldHome)!)).toBe(true);
    expect(statSync(secretPath(registry, "old-pi")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "keys")).mode & 0o777).toBe(0o700);
    expect((await deviceModels({ device: "old-pi", registry })).current).toBeNull();
    expect((await setupBoard({ device: "old-pi", registry })).secret).toBe("kept");
    // re-key: a new secret on both ends
    await setupBoard({ device: "old-pi", registry, rekey: true });
    const rekeyed = readDeviceSecret(registry, "old-pi")!;
    expect(rekeyed.equals(stored)).toBe(false);
    expect(rekeyed.equals(readSecret(oldHome)!)).toBe(true);
    // the host's copy lost: the board's differs from a stale one written back
    writeFileSync(secretPath(registry, "old-pi"), stored);
    const stale = await deviceModels({ device: "old-pi", registry }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(AuthError);
    expect((stale as AuthError).exitCode).toBe(2);
    expect((stale as Error).message).toMatch(/old-pi: .*could not prove it holds this device's secret/);
  }, 120_000);
});

describe("over a real loopback sshd", () => {
  const sshHome = join(dir, "ssh-home");
  const ssh = async (secret?: Uint8Array): Promise<Transport> =>
    connectSsh({
      host: "127.0.0.1",
      port: sshd!.port,
      user: sshd!.user,
      identityFiles: [sshd!.userKey],
      agent: false,
      configFile: false,
      knownHostsFile: join(dir, "known_hosts"),
      acceptNew: true,
      node: [process.execPath],
      home: sshHome,
      device: "ssh-pi",
      secret,
    });

  it("sets up with a secret, and a wrong device secret fails clearly, naming the board; nothing is written", async () => {
    sshd = await startSshd(join(dir, "sshd"));
    const t1 = await ssh();
    await setupDevice(t1);
    const secret = t1.secret!;
    expect(secret.length).toBe(32);
    expect(readSecret(sshHome)!.equals(Buffer.from(secret))).toBe(true);
    await t1.close();
    const before = boardFiles(sshHome);
    const wrong = await ssh(randomBytes(32));
    await expectWrongSecret(wrong, "ssh-pi");
    await wrong.close();
    const none = await ssh();
    const e2 = await connectAgent(none).catch((e: unknown) => e);
    expect((e2 as AgentNotInstalledError).code).toBe("no-device-secret");
    expect((e2 as AgentNotInstalledError).exitCode).toBe(2);
    await none.close();
    expect(boardFiles(sshHome)).toEqual(before);
    const right = await ssh(secret);
    const { client } = await connectAgent(right);
    expect((await client.list()).models).toEqual([]);
    await client.close();
    await right.close();
    expect(existsSync(join(sshHome, "install", key, "agent.mjs"))).toBe(true);
  }, 120_000);
});
