/**
 * Real parts: an OpenSSH server on 127.0.0.1 (temporary host and user keys), and the emulated Raspberry Pi 4
 * (arm64 Node + onnxruntime-node's arm64 build under qemu-user, Cortex-A72, in a mount namespace). Root-only.
 */

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSecret } from "../../devices/agent/auth.js";
import { deployModel, listModels, rollback } from "../../devices/deploy.js";
import { AuthError, HostKeyChangedError, NodeError, UnknownHostKeyError } from "../../devices/errors.js";
import { connectAgent, setupDevice } from "../../devices/setup.js";
import type { Transport } from "../../devices/transport/channel.js";
import { type Emulator, emulatedTransport, ensureEmulator } from "../../devices/transport/emulator.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { connectSsh, type SshOptions } from "../../devices/transport/ssh.js";
import { formatFleet, validateFleet, validateModel } from "../../devices/validate.js";
import { encodeModel, loadModel } from "../../src/onnx/codec.js";
import { MNIST8, mnistTest } from "./helpers.js";
import { type Sshd, startSshd } from "./sshd.js";

const dir = mkdtempSync(join(tmpdir(), "qat-remote-"));
const mnist = readFileSync(MNIST8);
const variant = loadModel(MNIST8);
variant.producerName = "qat-remote-variant";
const mnistB = encodeModel(variant);
let sshd: Sshd;
let emu: Emulator;
const open: Transport[] = [];

function sshOpts(extra: Partial<SshOptions> = {}): SshOptions {
  return {
    host: "127.0.0.1",
    port: sshd.port,
    user: sshd.user,
    identityFiles: [sshd.userKey],
    agent: false,
    configFile: false,
    knownHostsFile: join(dir, "known_hosts"),
    acceptNew: true,
    node: [process.execPath],
    home: join(dir, "ssh-home"),
    connectTimeoutMs: 10_000,
    ...extra,
  };
}

async function ssh(extra: Partial<SshOptions> = {}): Promise<Transport> {
  const t = await connectSsh(sshOpts(extra));
  // the device secret a setup left in the board's home (a folder of this machine), as the registry would hold it
  t.secret ??= readSecret(sshOpts(extra).home!) ?? undefined;
  open.push(t);
  return t;
}

beforeAll(async () => {
  sshd = await startSshd(join(dir, "sshd"));
  emu = await ensureEmulator();
}, 300_000);

afterAll(async () => {
  for (const t of open) t.abort();
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("ssh transport against a real sshd", () => {
  it("refuses first contact without acceptNew, then records the key with it", async () => {
    const err = await connectSsh(sshOpts({ acceptNew: false })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownHostKeyError);
    expect((err as Error).message).toMatch(/accept-new/);
    expect(existsSync(join(dir, "known_hosts"))).toBe(false);
    const t = await ssh();
    const r = await t.exec(["echo", "it's a 'quoted' $HOME; `x`"]);
    expect(r.stdout.toString()).toBe("it's a 'quoted' $HOME; `x`\n"); // no shell expansion of our arguments
    await t.close();
    expect(readFileSync(join(dir, "known_hosts"), "utf8")).toMatch(/^\|1\|.+ ssh-ed25519 /);
    const again = await connectSsh(sshOpts({ acceptNew: false }));
    await again.close();
  });

  it("refuses a changed host key", async () => {
    const other = join(dir, "known_hosts_changed");
    // a known_hosts that records another ed25519 key for this host and port
    const fake = readFileSync(sshd.userKey + ".pub", "utf8")
      .split(" ")
      .slice(0, 2)
      .join(" ");
    writeFileSync(other, `[127.0.0.1]:${sshd.port} ${fake}\n`);
    const err = await connectSsh(sshOpts({ knownHostsFile: other, acceptNew: true })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HostKeyChangedError);
    expect((err as Error).message).toMatch(/CHANGED/);
    expect((err as Error).message).toMatch(/ssh-keygen -R/);
    expect(readFileSync(other, "utf8").trim().split("\n")).toHaveLength(1); // not overwritten
  });

  it("refuses a wrong key with a message naming the key and the fix", async () => {
    const err = await connectSsh(sshOpts({ identityFiles: [sshd.wrongKey] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as Error).message).toContain(sshd.wrongKey);
    expect((err as Error).message).toMatch(/authorized_keys/);
    expect((err as AuthError).exitCode).toBe(1);
  });

  it("authenticates through ssh-agent (no key file given)", async () => {
    const sock = join(dir, "agent.sock");
    const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
    try {
      for (let i = 0; i < 50 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
      execFileSync("ssh-add", ["-q", sshd.userKey], {
        env: { ...process.env, SSH_AUTH_SOCK: sock },
        stdio: "ignore",
      });
      const t = await ssh({ identityFiles: [], agent: sock });
      expect((await t.exec(["echo", "via agent"])).stdout.toString()).toBe("via agent\n");
      await t.close();
    } finally {
      agent.kill("SIGTERM");
    }
  });

  it("explains a board without Node.js, describing the board from a plain shell", async () => {
    const t = await ssh({ node: ["/opt/no-such-node/bin/node"], home: join(dir, "nonode-home") });
    const err = await setupDevice(t).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeError);
    expect((err as NodeError).code).toBe("node-missing");
    expect((err as Error).message).toMatch(/looks like a generic x86-64 Linux, glibc 2\.\d+/);
    expect((err as Error).message).toMatch(/install Node\.js ≥ 18/);
    await t.close();
  });

  it("sets up, deploys, validates and rolls back over ssh", async () => {
    const t = await ssh();
    const s = await setupDevice(t);
    expect(s.changed).toBe(true);
    expect((await setupDevice(t)).changed).toBe(false);
    const a = await deployModel(mnist, t, { name: "mnist-8.onnx" });
    const b = await deployModel(mnistB, t);
    expect(b.previous).toBe(a.sha256);
    const r = await validateModel(mnist, mnistTest(8), t, { maxDrift: 0 });
    expect(r.agreement).toBe(1);
    expect(r.output.maxAbs).toBe(0); // same x64 binaries on both ends
    expect(r.exceeded).toBe(false);
    const rb = await rollback(t);
    expect(rb.to).toBe(a.sha256);
    expect((await listModels(t)).current).toBe(a.sha256);
    await t.close();
  });

  it("an upload cut mid-way (connection killed) keeps current and leaves no partial file", async () => {
    const t = await ssh();
    const home = join(dir, "ssh-home");
    const before = await listModels(t);
    const { client } = await connectAgent(t);
    const big = new Uint8Array(4 << 20).fill(3);
    const begin = await client.request({
      t: "put.begin",
      kind: "model",
      size: big.length,
      sha256: "b".repeat(64),
    });
    await client.post({ t: "put.chunk", put: begin.header.id }, big.subarray(0, 1 << 20));
    await client.post({ t: "put.chunk", put: begin.header.id }, big.subarray(1 << 20, 2 << 20));
    for (let i = 0; i < 50 && readdirSync(join(home, "tmp")).length === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(join(home, "tmp")).length).toBe(1); // the bytes so far sit in tmp/, not among the models
    t.abort(); // the cable is pulled
    // the agent sees its stream end and removes the partial upload
    for (let i = 0; i < 100 && readdirSync(join(home, "tmp")).length > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(join(home, "tmp"))).toEqual([]);
    const t2 = await ssh();
    const after = await listModels(t2);
    expect(after.current).toBe(before.current);
    expect(after.models.map((m) => m.sha256).sort()).toEqual(before.models.map((m) => m.sha256).sort());
    await t2.close();
  });
});

describe("emulated Raspberry Pi 4 (arm64 under qemu)", () => {
  it("is detected as a Pi 4 and runs mnist-8 with the host's float outputs", async () => {
    const t = emulatedTransport(emu, { home: join(dir, "emu-home") });
    const s = await setupDevice(t);
    expect(s.facts.arch).toBe("arm64");
    expect(s.facts.machine).toBe("aarch64");
    expect(s.detection.profile.id).toBe("raspberry-pi-4");
    expect(s.detection.profile.dotProduct).toBe(false);
    expect(s.detection.cpuParts).toEqual(["0xd08"]);
    const bins = readdirSync(
      join(dir, "emu-home", "install", s.key, "node_modules/onnxruntime-node/bin/napi-v6/linux"),
    );
    expect(bins).toEqual(["arm64"]);
    await deployModel(mnist, t);
    const r = await validateModel(mnist, mnistTest(6), t, { maxDrift: 0 });
    expect(r.arch).toBe("arm64");
    expect(r.board).toBe("raspberry-pi-4");
    expect(r.agreement).toBe(1);
    expect(r.boardAccuracy).toBe(r.hostAccuracy);
    // ARM and x86 kernels sum in another order: equal to float32 rounding, not bit for bit
    expect(r.output.maxAbs).toBeLessThan(1e-4 * r.output.refMaxAbs);
    console.log(
      `emulated rpi4 vs host: max |Δ| ${r.output.maxAbs} (max |y| ${r.output.refMaxAbs}), p50 ${r.latencyMs.p50.toFixed(1)} ms, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MB`,
    );
  });

  it("runs through ssh: the ssh session's command starts the emulated arm64 agent", async () => {
    const t = await ssh({ node: [emu.node], home: join(dir, "ssh-emu-home") });
    const s = await setupDevice(t);
    expect(s.facts.arch).toBe("arm64");
    expect(s.detection.profile.id).toBe("raspberry-pi-4");
    const r = await validateModel(mnist, mnistTest(4), t);
    expect(r.arch).toBe("arm64");
    expect(r.agreement).toBe(1);
    expect(r.output.maxAbs).toBeLessThan(1e-4 * r.output.refMaxAbs);
    expect(r.output.maxAbs).toBeGreaterThan(0); // really the ARM kernels, not the host's
    await t.close();
  });

  it("validates a fleet of three boards (local, emulated, ssh) into one table", async () => {
    const local = new LocalTransport({ home: join(dir, "local-home"), label: "local" });
    await setupDevice(local);
    const fleet = await validateFleet(
      mnist,
      mnistTest(4, 100),
      [
        { name: "local", open: async () => local },
        { name: "rpi4-emulated", open: async () => emulatedTransport(emu, { home: join(dir, "emu-home") }) },
        { name: "ssh-loopback", open: () => ssh() },
        { name: "ssh-wrong-key", open: () => ssh({ identityFiles: [sshd.wrongKey] }) },
      ],
      { concurrency: 2, maxDrift: 0.5 },
    );
    const table = formatFleet(fleet);
    console.log(table);
    expect(fleet.rows.map((r) => r.device)).toEqual([
      "local",
      "rpi4-emulated",
      "ssh-loopback",
      "ssh-wrong-key",
    ]);
    expect(fleet.rows.slice(0, 3).every((r) => r.report && r.report.agreement === 1)).toBe(true);
    expect(fleet.rows[1]!.report!.board).toBe("raspberry-pi-4");
    expect(fleet.rows[3]!.error?.code).toBe("auth-failed");
    expect(fleet.failed).toBe(1);
    expect(fleet.exceeded).toBe(true); // a board that failed fails the fleet
    const lines = table.split("\n");
    // header, four boards, the failed board's message, the emulated board's timing label
    expect(lines).toHaveLength(7);
    expect(lines[4]).toMatch(/^ssh-wrong-key\s+error: auth-failed/);
    expect(lines.slice(5).join("\n")).toMatch(/^ssh-wrong-key: .*refused every key/m);
    expect(lines.slice(5).join("\n")).toMatch(/timings emulated: qemu-aarch64-static .* -cpu cortex-a72/);
  });
});
