/**
 * Devices over a serial line: the link layer's pieces (COBS, CRC-32, resync, a lossy in-memory line), then real
 * socat pty pairs with the qat agent listening on one end — the native agent and the arm64 agent under qemu —
 * deploying and validating mnist-8, with the same accuracy as over SSH.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSecret } from "../../devices/agent/auth.js";
import { deployModel, listModels, rollback } from "../../devices/deploy.js";
import { ConnectError, DeviceError } from "../../devices/errors.js";
import { openDevice, parseDeviceUri } from "../../devices/registry.js";
import {
  cobsDecode,
  cobsEncode,
  crc32,
  encodeLinkFrame,
  FrameType,
  LinkDecoder,
} from "../../devices/serial/frames.js";
import { Link } from "../../devices/serial/link.js";
import type { ByteLine } from "../../devices/serial/options.js";
import { explainOpenError } from "../../devices/serial/tty.js";
import { agentPath, setupDevice } from "../../devices/setup.js";
import type { Transport } from "../../devices/transport/channel.js";
import { emulatedTransport, ensureEmulator } from "../../devices/transport/emulator.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { listSerialPorts, type SerialTransport } from "../../devices/transport/serial.js";
import { connectSsh } from "../../devices/transport/ssh.js";
import { validateModel } from "../../devices/validate.js";
import { encodeModel, loadModel } from "../../src/onnx/codec.js";
import { MNIST8, mnistTest } from "./helpers.js";
import { type PtyPair, ptyPair, type RunningAgent, startSerialAgent } from "./serial-fixture.js";
import { type Sshd, startSshd } from "./sshd.js";

describe("link layer pieces", () => {
  it("COBS round-trips any bytes (zeros, 254-byte runs) and never emits a zero inside a frame", () => {
    const cases = [
      Buffer.alloc(0),
      Buffer.from([0]),
      Buffer.from([0, 0, 0]),
      Buffer.alloc(254, 1),
      Buffer.alloc(255, 7),
      Buffer.alloc(600, 0),
      randomBytes(5000),
    ];
    for (const c of cases) {
      const enc = cobsEncode(c);
      expect(enc.at(-1)).toBe(0);
      expect(enc.subarray(0, -1).includes(0)).toBe(false);
      expect(cobsDecode(enc.subarray(0, -1))!.equals(c)).toBe(true);
    }
  });

  it("CRC-32 is the IEEE one, and a frame with one changed byte is refused; the decoder resyncs after garbage", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    const f = { type: FrameType.Data, flags: 0, session: 7, seq: 1000, ack: 5, body: randomBytes(300) };
    const wire = encodeLinkFrame(f);
    const dec = new LinkDecoder(10_000);
    const good = dec.push(Buffer.concat([randomBytes(50).map((b) => b || 1), Buffer.from([0]), wire]));
    expect(good).toHaveLength(1);
    expect(good[0]).toMatchObject({ type: FrameType.Data, session: 7, seq: 1000, ack: 5 });
    expect(good[0]!.body.equals(f.body)).toBe(true);
    const bad = Buffer.from(wire);
    bad[100] = bad[100] === 0x55 ? 0x56 : 0x55;
    expect(dec.push(Buffer.concat([bad, wire]))).toHaveLength(1);
    expect(dec.bad).toBeGreaterThanOrEqual(2);
  });

  it("delivers a stream exactly over an in-memory line that corrupts 1% of bytes", async () => {
    let seed = 42;
    const rnd = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 4294967296;
    };
    const listeners: Record<"a" | "b", ((b: Buffer) => void)[]> = { a: [], b: [] };
    const end = (me: "a" | "b", other: "a" | "b"): ByteLine => ({
      write(b) {
        const o = Buffer.from(b);
        for (let i = 0; i < o.length; i++)
          if (rnd() < 0.01) o[i] = (o[i]! + 1 + Math.floor(rnd() * 255)) & 0xff;
        setTimeout(() => {
          for (const l of listeners[other]) l(o);
        }, 1);
      },
      onData(l) {
        listeners[me].push(l);
      },
    });
    const secret = randomBytes(32);
    const host = new Link(end("a", "b"), () => secret, { maxFrame: 512 });
    const board = new Link(end("b", "a"), () => secret, { maxFrame: 1024 });
    board.listen((s) => {
      const h = createHash("sha256");
      s.readable.on("data", (d: Buffer) => h.update(d));
      s.readable.on("end", () => {
        s.writable.end(h.digest("hex"));
      });
    });
    const s = await host.connect();
    expect(s.negotiated).toMatchObject({ version: 2, maxFrame: 512 });
    const data = randomBytes(40_000);
    let reply = "";
    s.readable.on("data", (d: Buffer) => {
      reply += d.toString();
    });
    s.writable.end(data);
    expect(await s.closed).toBe("clean");
    expect(reply).toBe(createHash("sha256").update(data).digest("hex"));
    expect(host.stats.retransmissions).toBeGreaterThan(0);
    expect(board.stats.badFrames).toBeGreaterThan(0);
  });

  it("explains a tty's permission error with the dialout group, and lists ports without udev", async () => {
    const e = explainOpenError(
      "/dev/ttyUSB0",
      Object.assign(new Error("Error: Permission denied, cannot open /dev/ttyUSB0"), { code: "EACCES" }),
    );
    expect(e.code).toBe("serial-permission");
    expect(e.hint).toMatch(/usermod -aG dialout/);
    const r = await listSerialPorts();
    expect(Array.isArray(r.ports)).toBe(true);
    if (r.note) expect(r.note).toMatch(/udev/); // no udev here: the scan of /dev answered instead of an error
  });

  it("parses serial URIs and refuses bad ones (exit 2)", () => {
    expect(parseDeviceUri("serial:///dev/ttyUSB0?baud=921600&frame=512&dead=3")).toEqual({
      kind: "serial",
      path: "/dev/ttyUSB0",
      baud: 921600,
      maxFrame: 512,
      window: undefined,
      deadAfterMs: 3000,
    });
    expect(parseDeviceUri("serial:///dev/ttyGS0")).toMatchObject({ path: "/dev/ttyGS0", baud: 115200 });
    for (const bad of [
      "serial://ttyUSB0",
      "serial:///dev/ttyUSB0?baud=fast",
      "serial:///dev/x?parity=even",
    ]) {
      expect(() => parseDeviceUri(bad)).toThrow(DeviceError);
    }
  });
});

const dir = mkdtempSync(join(tmpdir(), "qat-serial-"));
const mnist = readFileSync(MNIST8);
const BAUD = 921600;
const set = mnistTest(100);
const stops: (() => Promise<void>)[] = [];
let sshd: Sshd | undefined;

afterAll(async () => {
  for (const s of stops.reverse()) await s().catch(() => {});
  await sshd?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** The board's serial end, with the device secret its setup (over the local or emulated transport) left in `home`. */
async function serialDevice(pair: PtyPair, name: string, home: string): Promise<SerialTransport> {
  const t = (await openDevice({ name, uri: `serial://${pair.a}?baud=${BAUD}&dead=5` })) as SerialTransport;
  t.secret = readSecret(home) ?? undefined;
  stops.push(() => t.close());
  return t;
}

describe("deploy and validate over a socat pty pair", () => {
  const accuracy: Record<string, number> = {};
  let native: { pair: PtyPair; agent: RunningAgent; home: string };

  beforeAll(async () => {
    const home = join(dir, "native-home");
    const setup = await setupDevice(new LocalTransport({ home }));
    const pair = await ptyPair(dir, "native");
    stops.push(pair.stop);
    const agent = await startSerialAgent(
      process.execPath,
      agentPath(new LocalTransport({ home }), setup.key),
      home,
      pair.b,
      BAUD,
    );
    stops.push(agent.stop);
    native = { pair, agent, home };
  });

  it("the native agent: setup over serial has nothing to do; deploy, list, validate, rollback", async () => {
    const t = await serialDevice(native.pair, "pty-native", native.home);
    const s = await setupDevice(t);
    expect(s.changed).toBe(false);
    await expect(t.exec(["ls"])).rejects.toThrow(/runs no commands/);
    const a = await deployModel(mnist, t, { name: "mnist-8.onnx" });
    expect(a.uploaded).toBe(true);
    expect(readFileSync(join(native.home, "models", a.sha256, "model.onnx")).equals(mnist)).toBe(true);
    const vm = loadModel(MNIST8);
    vm.producerName = "qat-serial-variant"; // other bytes, same graph
    const variant = encodeModel(vm);
    const b = await deployModel(variant, t, { name: "variant.onnx" });
    expect(b.previous).toBe(a.sha256);
    expect((await listModels(t)).history).toEqual([a.sha256, b.sha256]);
    expect(await rollback(t)).toMatchObject({ from: b.sha256, to: a.sha256 });
    const r = await validateModel(mnist, set, t, { maxDrift: 0 });
    expect(r).toMatchObject({ samples: 100, drift: 0, agreement: 1, exceeded: false });
    accuracy.serialNative = r.boardAccuracy;
    expect(t.stats.badFrames).toBe(0);
    expect(t.stats.retransmissions).toBe(0);
    await t.close();
  });

  it("a tty where no agent answers fails with a clear error", async () => {
    const quiet = await ptyPair(dir, "quiet");
    stops.push(quiet.stop);
    const t = (await openDevice({
      name: "quiet",
      uri: `serial://${quiet.a}?baud=${BAUD}`,
    })) as SerialTransport;
    stops.push(() => t.close());
    t.secret = randomBytes(32);
    (t.link.options as { helloTimeoutMs: number }).helloTimeoutMs = 1000;
    const err = await deployModel(mnist, t).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as Error).message).toMatch(/no qat agent answers on .*quiet-a.*qat-agent\.service/);
    await t.close();
  });

  it("the arm64 agent under qemu, opening its end of the pty: deploy and validate", async () => {
    const emu = await ensureEmulator();
    const et = emulatedTransport(emu, { home: join(dir, "emu-home") });
    const setup = await setupDevice(et);
    expect(setup.installed.arch).toBe("arm64");
    const pair = await ptyPair(dir, "emu");
    stops.push(pair.stop);
    const agent = await startSerialAgent(emu.node, agentPath(et, setup.key), et.home, pair.b, BAUD);
    stops.push(agent.stop);
    const t = await serialDevice(pair, "pty-emulated", et.home);
    const d = await deployModel(mnist, t, { name: "mnist-8.onnx" });
    expect(readFileSync(join(et.home, "models", d.sha256, "model.onnx")).equals(mnist)).toBe(true);
    const r = await validateModel(mnist, set, t, { maxDrift: 0 });
    expect(r).toMatchObject({ board: "raspberry-pi-4", arch: "arm64", samples: 100, drift: 0, agreement: 1 });
    accuracy.serialEmulated = r.boardAccuracy;
    expect(agent.stderr()).toMatch(/session [0-9a-f]+ opened/);
    await t.close();
  });

  it("the accuracy over serial equals the SSH path's for the same model and samples", async () => {
    sshd = await startSshd(join(dir, "sshd"));
    const t: Transport = await connectSsh({
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
    });
    stops.push(() => t.close());
    await setupDevice(t);
    const r = await validateModel(mnist, set, t);
    accuracy.ssh = r.boardAccuracy;
    await t.close();
    expect(accuracy.serialNative).toBeDefined();
    expect(accuracy.serialEmulated).toBeDefined();
    expect(accuracy.serialNative).toBe(accuracy.ssh);
    expect(accuracy.serialEmulated).toBe(accuracy.ssh);
    expect(accuracy.ssh).toBeGreaterThan(0.95);
  });
});
