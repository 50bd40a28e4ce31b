import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeFrame, FrameDecoder } from "../../devices/agent/framing.js";
import { boardProgram, rewriteImports } from "../../devices/agent/program.js";
import { agentProgram } from "../../devices/agent/source.js";
import { packTensors, unpackTensor } from "../../devices/agent/tensors.js";
import { detectBoard, factsOverShell } from "../../devices/boards.js";
import { AuthError, ConnectError, DeviceError, RegistryError } from "../../devices/errors.js";
import {
  addDevice,
  listDevices,
  openDevice,
  parseDeviceUri,
  removeDevice,
  resolveDevice,
} from "../../devices/registry.js";
import { linkProgram } from "../../devices/serial/source.js";
import { shellJoin } from "../../devices/transport/channel.js";
import { HASWELL_CPUINFO, RPI4_CPUINFO } from "../../devices/transport/emulator.js";
import { addKnownHost, parseKnownHosts, verifyHostKey } from "../../devices/transport/known-hosts.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { connectSsh, resolveSsh } from "../../devices/transport/ssh.js";
import { difference, stats } from "../../devices/validate.js";

const dir = mkdtempSync(join(tmpdir(), "qat-units-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("frames", () => {
  it("round-trips header and raw payload, split at any byte, after noise", () => {
    const payload = Uint8Array.from({ length: 1000 }, (_, i) => i % 256);
    const bytes = Buffer.concat([
      Buffer.from("Last login: today\n"),
      encodeFrame({ t: "a", id: 1, x: "é" }, payload),
      encodeFrame({ t: "b", id: 2 }),
    ]);
    for (const step of [1, 7, 13, bytes.length]) {
      const d = new FrameDecoder();
      const frames = [];
      for (let i = 0; i < bytes.length; i += step) frames.push(...d.push(bytes.subarray(i, i + step)));
      expect(frames.map((f) => f.header)).toEqual([
        { t: "a", id: 1, x: "é" },
        { t: "b", id: 2 },
      ]);
      expect(Buffer.from(frames[0]!.payload).equals(Buffer.from(payload))).toBe(true);
      expect(d.noise).toBe("Last login: today\n");
    }
  });

  it("refuses a frame claiming an absurd size instead of buffering it", () => {
    const bad = Buffer.from(encodeFrame({ t: "x" }));
    bad.writeUInt32BE(0xffffffff, 8);
    expect(() => new FrameDecoder().push(bad)).toThrow(
      /payload of 4294967295 bytes .* exceeds the limit of 67108864 bytes/,
    );
  });

  it("packs tensors 8-byte aligned and unpacks them exactly", () => {
    const a = Float32Array.of(1.5, -2, Number.NaN);
    const b = BigInt64Array.of(-1n, 2n ** 40n);
    const { refs, payload } = packTensors([
      { name: "a", dtype: "float32", dims: [3], data: a },
      { name: "b", dtype: "int64", dims: [2], data: b },
    ]);
    expect(refs[1]!.offset % 8).toBe(0);
    expect(Array.from(unpackTensor(refs[0]!, payload) as Float32Array)).toEqual([1.5, -2, Number.NaN]);
    expect(Array.from(unpackTensor(refs[1]!, payload) as BigInt64Array)).toEqual([-1n, 2n ** 40n]);
    expect(() => unpackTensor({ ...refs[0]!, length: 400 }, payload)).toThrow(/outside/);
  });
});

describe("board programs", () => {
  it("ship every module with its imports pointing at files beside it, and run from a plain folder", async () => {
    const agent = await agentProgram();
    const link = await linkProgram();
    const files = [...agent.files, ...link.files];
    const names = new Set(files.map((f) => f.path));
    expect(names.size).toBe(files.length);
    expect(agent.files.at(-1)!.path).toBe("agent.mjs");
    for (const f of files) {
      for (const m of f.code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm)) {
        const spec = m[1]!;
        if (!spec.startsWith("node:"))
          expect(names.has(spec.replace(/^\.\//, "")), `${f.path}: ${spec}`).toBe(true);
      }
    }
    const install = join(dir, "install");
    mkdirSync(install);
    for (const f of files) writeFileSync(join(install, f.path), f.code);
    const version = execFileSync(process.execPath, [join(install, "agent.mjs"), "--version"], {
      encoding: "utf8",
    });
    expect(version.trim()).toBe("0.1.0 protocol 1");
    const facts = JSON.parse(
      execFileSync(process.execPath, [join(install, "agent.mjs"), "--facts"], { encoding: "utf8" }),
    );
    expect(facts).toMatchObject({ platform: process.platform, arch: process.arch });
    // the link layer loads on its own too (the agent imports it only with --serial)
    const tty = await import(join(install, "serial-tty.mjs"));
    expect(typeof tty.serveTty).toBe("function");
  });

  it("refuse a board module that imports a module left out of the program, or an npm package", async () => {
    const only = [{ source: "agent/dispatch", file: "dispatch.mjs" }];
    const e = await boardProgram(only).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DeviceError);
    expect((e as Error).message).toMatch(/devices\/agent\/dispatch\.ts imports '\.\/config\.js'/);
    expect(() => rewriteImports('import ssh2 from "ssh2";\n', "agent/x", only)).toThrow(/imports 'ssh2'/);
    expect(rewriteImports('import { a } from "../agent/dispatch.js";\n', "serial/x", only)).toBe(
      'import { a } from "./dispatch.mjs";\n',
    );
  });
});

describe("shell quoting", () => {
  it("passes any argument through a POSIX shell unchanged", () => {
    const args = [
      "plain",
      "",
      "a b",
      "it's",
      "$(rm -rf /)",
      "`id`",
      "a\nb",
      '"q"',
      "*",
      "~",
      "back\\slash",
      "-n",
    ];
    const out = execFileSync("sh", ["-c", `printf '%s\\0' ${shellJoin(args)}`]).toString();
    expect(out.split("\0").slice(0, -1)).toEqual(args);
  });
});

describe("known_hosts", () => {
  const blob = (seed: string): Buffer => {
    const type = Buffer.from("ssh-ed25519");
    const key = Buffer.alloc(32, seed);
    const b = Buffer.alloc(4 + type.length + 4 + 32);
    b.writeUInt32BE(type.length, 0);
    type.copy(b, 4);
    b.writeUInt32BE(32, 4 + type.length);
    key.copy(b, 8 + type.length);
    return b;
  };
  it("matches plain, wildcard, negated and hashed entries; spots a changed key", () => {
    const k1 = blob("a");
    const k2 = blob("b");
    const text = [
      `# comment`,
      `pi4,[10.0.0.7]:2222 ssh-ed25519 ${k1.toString("base64")}`,
      `*.lan,!evil.lan ssh-ed25519 ${k1.toString("base64")}`,
      `@revoked old ssh-ed25519 ${k2.toString("base64")}`,
    ].join("\n");
    const e = parseKnownHosts(text);
    expect(verifyHostKey(e, "pi4", k1).status).toBe("ok");
    expect(verifyHostKey(e, "[10.0.0.7]:2222", k1).status).toBe("ok");
    expect(verifyHostKey(e, "10.0.0.7", k1).status).toBe("unknown");
    expect(verifyHostKey(e, "board.lan", k1).status).toBe("ok");
    expect(verifyHostKey(e, "evil.lan", k1).status).toBe("unknown");
    expect(verifyHostKey(e, "pi4", k2)).toMatchObject({
      status: "changed",
      knownTypes: ["ssh-ed25519"],
      line: 2,
    });
    expect(verifyHostKey(e, "old", k2).status).toBe("revoked");
    const file = join(dir, "kh");
    addKnownHost(file, "[127.0.0.1]:2200", k2);
    const hashed = parseKnownHosts(readFileSync(file, "utf8"));
    expect(hashed[0]!.patterns).toMatch(/^\|1\|/);
    expect(verifyHostKey(hashed, "[127.0.0.1]:2200", k2).status).toBe("ok");
    expect(verifyHostKey(hashed, "[127.0.0.1]:2200", k1).status).toBe("changed");
    expect(verifyHostKey(hashed, "127.0.0.1", k2).status).toBe("unknown");
  });
});

describe("ssh config", () => {
  it("resolves a Host alias: HostName, User, Port, IdentityFile, known_hosts, timeouts", () => {
    const cfg = join(dir, "ssh_config");
    writeFileSync(
      cfg,
      [
        "Host pi4",
        "  HostName 10.0.0.7",
        "  User pi",
        "  Port 2222",
        "  IdentityFile ~/.ssh/pi_%r_%h",
        "  UserKnownHostsFile /tmp/kh_pi",
        "  ConnectTimeout 7",
        "  StrictHostKeyChecking accept-new",
        "Host jump",
        "  ProxyJump bastion",
        "Host *",
        "  ServerAliveInterval 30",
        "",
      ].join("\n"),
    );
    const r = resolveSsh({ host: "pi4", configFile: cfg });
    expect(r).toMatchObject({
      hostName: "10.0.0.7",
      user: "pi",
      port: 2222,
      knownHostsFile: "/tmp/kh_pi",
      acceptNew: true,
    });
    expect(r.identityFiles[0]).toMatch(/\/\.ssh\/pi_pi_10\.0\.0\.7$/);
    expect(r.connectTimeoutMs).toBe(7000);
    expect(r.keepaliveIntervalMs).toBe(30_000);
    expect(resolveSsh({ host: "pi4", user: "root", port: 22, configFile: cfg })).toMatchObject({
      user: "root",
      port: 22,
    });
    expect(() => resolveSsh({ host: "jump", configFile: cfg })).toThrow(/ProxyJump/);
  });
});

describe("ssh connection failures", () => {
  it("times out on a port that accepts but never speaks SSH, and names a refused port", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    const keyFile = join(dir, "k");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
    const base = {
      host: "127.0.0.1",
      user: "x",
      identityFiles: [keyFile],
      agent: false as const,
      configFile: false as const,
    };
    try {
      const e = await connectSsh({ ...base, port, connectTimeoutMs: 500 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ConnectError);
      expect((e as ConnectError).code).toBe("timeout");
    } finally {
      silent.close();
    }
    const closed = await connectSsh({ ...base, port, connectTimeoutMs: 2000 }).catch((x: unknown) => x);
    expect(closed).toBeInstanceOf(ConnectError);
    expect((closed as ConnectError).code).toBe("refused");
    const noKey = await connectSsh({ ...base, port, identityFiles: [] }).catch((x: unknown) => x);
    expect(noKey).toBeInstanceOf(AuthError);
    expect((noKey as Error).message).toMatch(/no private key/);
  });
});

describe("facts over a plain shell", () => {
  it("reads machine, glibc, memory and node without the agent", async () => {
    const f = await factsOverShell(new LocalTransport());
    expect(f.machine).toBe(process.arch === "x64" ? "x86_64" : "aarch64");
    expect(f.glibc).toMatch(/^2\.\d+$/);
    expect(f.memTotal).toBeGreaterThan(1 << 20);
    expect(f.cpuinfo).toMatch(/processor/);
  });
});

describe("device registry", () => {
  const path = join(dir, "devices.json");
  it("parses URIs and refuses bad ones with exit code 2", () => {
    expect(parseDeviceUri("ssh://pi@10.0.0.7:2222")).toEqual({
      kind: "ssh",
      host: "10.0.0.7",
      user: "pi",
      port: 2222,
    });
    expect(parseDeviceUri("ssh://pi4")).toEqual({
      kind: "ssh",
      host: "pi4",
      user: undefined,
      port: undefined,
    });
    expect(parseDeviceUri("ssh://root@[::1]:22")).toMatchObject({ host: "::1", port: 22 });
    expect(parseDeviceUri("local")).toEqual({ kind: "local" });
    expect(parseDeviceUri("emulated:rpi4")).toEqual({ kind: "emulated", board: "rpi4" });
    expect(parseDeviceUri("emulated:x64-haswell")).toEqual({ kind: "emulated", board: "x64-haswell" });
    expect(() => parseDeviceUri("emulated:pi9")).toThrow(
      /the emulated boards are emulated:rpi4, emulated:x64-haswell/,
    );
    for (const bad of ["ssh://", "ssh://a@b:99999", "http://x", "emulated:pi9", "pi@host"]) {
      const e = (() => {
        try {
          parseDeviceUri(bad);
        } catch (err) {
          return err;
        }
      })();
      expect(e, bad).toBeInstanceOf(RegistryError);
      expect((e as RegistryError).exitCode).toBe(2);
    }
  });

  it("adds, lists, resolves and removes; the emulated Pi 4 is the default when nothing is configured", async () => {
    expect(resolveDevice(undefined, { path }).uri).toBe("emulated:rpi4");
    addDevice({ name: "pi4", uri: "ssh://pi@10.0.0.7", key: "/k", acceptNew: true }, { path });
    expect(resolveDevice(undefined, { path }).name).toBe("pi4");
    addDevice({ name: "here", uri: "local", home: join(dir, "h") }, { path });
    expect(() => resolveDevice(undefined, { path })).toThrow(/none is the default/);
    expect(() => addDevice({ name: "pi4", uri: "local" }, { path })).toThrow(/already exists/);
    expect(() => addDevice({ name: "bad name", uri: "local" }, { path })).toThrow(RegistryError);
    expect(() => addDevice({ name: "x", uri: "local", key: "/k" }, { path })).toThrow(/ssh/);
    expect(listDevices({ path }).map((d) => d.name)).toEqual(["pi4", "here"]);
    expect(resolveDevice("ssh://a@b", { path }).uri).toBe("ssh://a@b");
    expect(() => resolveDevice("nope", { path })).toThrow(/no device named 'nope'/);
    const t = await openDevice(resolveDevice("here", { path }));
    expect(t.kind).toBe("local");
    expect(t.home).toBe(join(dir, "h"));
    removeDevice("pi4", { path });
    expect(listDevices({ path }).map((d) => d.name)).toEqual(["here"]);
    expect(() => removeDevice("pi4", { path })).toThrow(RegistryError);
    writeFileSync(path, "{not json");
    expect(() => listDevices({ path })).toThrow(/not valid JSON/);
  });
});

describe("board detection", () => {
  it("tells boards apart from their facts", () => {
    const pi4 = detectBoard({ arch: "arm64", machine: "aarch64", cpuinfo: RPI4_CPUINFO, glibc: "2.36" });
    expect(pi4.profile.id).toBe("raspberry-pi-4");
    expect(pi4.cpuParts).toEqual(["0xd08"]);
    const pi5 = detectBoard({
      arch: "arm64",
      machine: "aarch64",
      deviceTreeModel: "Raspberry Pi 5 Model B Rev 1.0",
      cpuinfo: "processor : 0\nFeatures : fp asimd asimddp\nCPU part : 0xd0b\n",
      glibc: "2.36",
    });
    expect(pi5.profile).toMatchObject({ id: "raspberry-pi-5", dotProduct: true });
    expect(pi5.warnings).toEqual([]);
    const orin = detectBoard({
      arch: "arm64",
      machine: "aarch64",
      nvTegraRelease: "# R36 (release), REVISION: 3.0",
      glibc: "2.35",
    });
    expect(orin.profile.id).toBe("jetson-orin");
    expect(orin.backend).toBe("onnxruntime-node");
    const nano = detectBoard({
      arch: "arm64",
      machine: "aarch64",
      deviceTreeModel: "NVIDIA Jetson Nano Developer Kit",
      nvTegraRelease: "# R32 (release), REVISION: 7.1",
      glibc: "2.27",
    });
    expect(nano.profile.id).toBe("jetson-nano");
    expect(nano.backend).toBe("onnxruntime-web");
    expect(nano.profile.notes.join(" ")).toMatch(/glibc 2.27/);
    const oldArm = detectBoard({ arch: "arm64", machine: "aarch64", glibc: "2.27" });
    expect(oldArm.profile.id).toBe("generic-arm64");
    expect(oldArm.backend).toBe("onnxruntime-web");
    expect(oldArm.warnings[0]).toMatch(/2.28/);
    expect(detectBoard({ arch: "x64", machine: "x86_64" }).profile.id).toBe("generic-x64");
  });

  it("says when an x86-64 board has no VNNI (its u8·s8 int8 kernels saturate)", () => {
    const haswell = detectBoard({ arch: "x64", machine: "x86_64", cpuinfo: HASWELL_CPUINFO, glibc: "2.36" });
    expect(haswell.profile.id).toBe("generic-x64");
    expect(haswell.evidence).toEqual([
      "machine: x86_64",
      "cpu: Intel Core Processor (Haswell, no TSX)",
      "no VNNI in cpuinfo",
    ]);
    expect(haswell.warnings).toEqual([expect.stringMatching(/^no VNNI: .*16 bits and saturate .*±64/)]);
    const vnni = detectBoard({
      arch: "x64",
      machine: "x86_64",
      cpuinfo: "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_vnni\n",
    });
    expect(vnni.evidence).toContain("VNNI in cpuinfo (avx512_vnni/avx_vnni)");
    expect(vnni.warnings).toEqual([]);
  });
});

describe("stats", () => {
  it("takes nearest-rank percentiles", () => {
    const s = stats(Array.from({ length: 100 }, (_, i) => 100 - i));
    expect(s).toMatchObject({ p50: 50, p90: 90, p99: 99, max: 100, mean: 50.5 });
  });
});

describe("output differences", () => {
  it("counts |host − board| in bins of ½, 1, 2, 4 … quantization steps, and the share that changed", () => {
    const host = Float32Array.of(0, 1, 2, 3, 4, 5, 6, 7);
    const board = Float32Array.of(0, 1, 2.1, 3.2, 4.6, 6, 8, 10);
    const d = difference("y", host, board, [2, 4], {
      kind: "dequantize",
      scale: Float32Array.of(0.5),
      axis: -1,
    });
    expect(d.maxAbs).toBeCloseTo(3, 6);
    expect(d.maxSteps).toBeCloseTo(6, 5);
    expect(d.changed).toBe(6 / 8);
    // |Δ| = 0, 0, 0.1, 0.2, 0.6, 1, 2, 3 against edges 0, 0.25, 0.5, 1, 2, 4
    expect(d.histogram).toEqual({ edges: [0, 0.25, 0.5, 1, 2, 4], counts: [4, 0, 1, 1, 2] });
    const same = difference("y", host, host, [8], {
      kind: "dequantize",
      scale: Float32Array.of(0.5),
      axis: -1,
    });
    expect(same.histogram).toEqual({ edges: [0, 0.25], counts: [8] });
  });
});
