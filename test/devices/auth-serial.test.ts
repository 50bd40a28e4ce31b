/**
 * A hostile peer on the board's serial line (a second writer on the host's end of a socat pty pair) against the
 * real agent listening on the board's end: the four-frame attack (hello → put.begin of an executable file → its
 * bytes → trt.build naming a program), a forged HELLO and forged frames in the middle of a session, a recorded
 * session replayed byte for byte, and an unauthenticated put. Everything is refused, nothing lands in the board's
 * folder, and the owner's session carries on.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { SerialPort } from "serialport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSecret } from "../../devices/agent/auth.js";
import { encodeFrame } from "../../devices/agent/framing.js";
import { AgentClient } from "../../devices/client.js";
import { openDevice } from "../../devices/registry.js";
import { encodeLinkFrame, FrameType, LinkDecoder, type RawFrame } from "../../devices/serial/frames.js";
import { helloBody, sealFrame } from "../../devices/serial/handshake.js";
import { Link } from "../../devices/serial/link.js";
import type { ByteLine } from "../../devices/serial/options.js";
import type { LinkSession } from "../../devices/serial/session.js";
import { authenticate } from "../../devices/session-auth.js";
import { agentPath, connectAgent, setupDevice } from "../../devices/setup.js";
import type { Channel } from "../../devices/transport/channel.js";
import { LocalTransport } from "../../devices/transport/local.js";
import type { SerialTransport } from "../../devices/transport/serial.js";
import { boardFiles, expectWrongSecret } from "./auth-fixture.js";
import { type PtyPair, ptyPair, type RunningAgent, startSerialAgent } from "./serial-fixture.js";

const BAUD = 921600;
const dir = mkdtempSync(join(tmpdir(), "qat-auth-serial-"));
const home = join(dir, "board-home");
let pair: PtyPair;
let agent: RunningAgent;
let secret: Buffer;
const ports: SerialPort[] = [];

/** The attacker: a second program with the host's end of the pty open, reading what comes back. */
async function attacker(): Promise<
  ByteLine & { frames: RawFrame[]; recorded: Buffer[]; close(): Promise<void> }
> {
  const port = new SerialPort({ path: pair.a, baudRate: BAUD, autoOpen: false, lock: false });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  ports.push(port);
  const decoder = new LinkDecoder(20_000);
  const frames: RawFrame[] = [];
  const listeners: ((b: Buffer) => void)[] = [];
  port.on("data", (b: Buffer) => {
    frames.push(...decoder.push(b));
    for (const l of listeners) l(b);
  });
  const recorded: Buffer[] = [];
  return {
    frames,
    recorded,
    write: (b) => {
      recorded.push(Buffer.from(b));
      port.write(b);
    },
    onData: (l) => listeners.push(l),
    // two readers on one tty share its bytes: the attacker lets go before the owner needs every byte again
    close: () => new Promise<void>((r) => port.drain(() => port.close(() => r()))),
  };
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An agent session over a link session, as the serial transport makes one. */
function channelOf(s: LinkSession): Channel {
  return {
    stdin: s.writable,
    stdout: s.readable,
    stderr: new Readable({ read: () => {} }),
    exited: s.closed.then((r) => (r === "clean" ? { code: 0, signal: null } : { code: null, signal: null })),
    kill: () => s.reset("killed"),
  };
}

/** The owner's device over the pty: the registry's secret, as openDevice gives it. */
async function owner(withSecret: Uint8Array = secret): Promise<SerialTransport> {
  const t = (await openDevice({
    name: "pty-board",
    uri: `serial://${pair.a}?baud=${BAUD}&dead=5`,
  })) as SerialTransport;
  t.secret = withSecret;
  return t;
}

/** The four frames of the attack, as agent frames (the ids a host would use). */
function fourFrames(): Buffer {
  const evil = Buffer.from("#!/bin/sh\nid > /tmp/pwned\n");
  return Buffer.concat([
    encodeFrame({ t: "hello", id: 1, protocol: 1 }),
    encodeFrame({
      t: "put.begin",
      id: 2,
      kind: "file",
      path: "evil.sh",
      mode: 0o755,
      size: evil.length,
      sha256: "0".repeat(64),
    }),
    encodeFrame({ t: "put.chunk", id: 3, put: 2 }, evil),
    encodeFrame({ t: "trt.build", id: 4, model: "current", trtexec: "/bin/sh" }),
  ]);
}

beforeAll(async () => {
  const setup = await setupDevice(new LocalTransport({ home }));
  secret = readSecret(home)!;
  pair = await ptyPair(dir, "auth");
  agent = await startSerialAgent(
    process.execPath,
    agentPath(new LocalTransport({ home }), setup.key),
    home,
    pair.b,
    BAUD,
  );
}, 120_000);

afterAll(async () => {
  // the board's own account of the attacks (sessions opened, forged frames dropped, unproven HELLOs)
  console.info(agent?.stderr().trim());
  console.info(`board folder: ${boardFiles(home).length} files`);
  for (const p of ports) if (p.isOpen) await new Promise((r) => p.close(() => r(null)));
  await agent?.stop();
  await pair?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("a hostile peer on the serial line", () => {
  it("the four-frame attack without the secret: HELLO answered, every later frame dropped, nothing written", async () => {
    const before = boardFiles(home);
    const a = await attacker();
    const id = 0x0badf00d;
    a.write(
      encodeLinkFrame({
        type: FrameType.Hello,
        flags: 0,
        session: id,
        seq: 0,
        ack: 0,
        body: helloBody({ maxFrame: 1024, window: 16384, baud: BAUD }, undefined, undefined, randomBytes(32)),
      }),
    );
    await wait(300);
    const ack = a.frames.find((f) => f.type === FrameType.HelloAck && f.session === id);
    expect(ack).toBeDefined(); // the board answers with its nonce and proof: nothing an attacker can use
    const stream = fourFrames();
    // the same bytes as DATA frames: untagged, then tagged under a guessed key
    a.write(encodeLinkFrame({ type: FrameType.Data, flags: 0, session: id, seq: 0, ack: 0, body: stream }));
    const guessed = sealFrame(randomBytes(32), "host", {
      type: FrameType.Data,
      flags: 0,
      session: id,
      seq: 0,
      ack: 0,
      body: stream,
    });
    a.write(encodeLinkFrame(guessed));
    await wait(1000);
    const answers = a.frames.filter((f) => f.session === id && f.type !== FrameType.HelloAck);
    expect(answers).toEqual([]); // no ACK, no DATA: the agent never saw a byte
    expect(boardFiles(home)).toEqual(before);
    expect(agent.stderr()).not.toMatch(/session badf00d opened/);
    await a.close();
    // the owner's session works afterwards
    const t = await owner();
    const { client, hello } = await connectAgent(t);
    expect(hello.installKey).toMatch(/^0\.1\.0-/);
    expect(JSON.stringify(hello)).not.toContain(join(home, "install"));
    expect((await client.list()).models).toEqual([]);
    await client.close();
    await t.close();
  }, 60_000);

  it("a forged HELLO, a forged RST and injected DATA mid-session do not take the owner's session over", async () => {
    const t = await owner();
    const { client } = await connectAgent(t);
    const session = t.link.current!;
    const before = boardFiles(home);
    const a = await attacker();
    // a new session id: answered, but it never replaces the owner's (the attacker cannot tag a frame)
    const id = 0x5eed5eed;
    const hello = helloBody(
      { maxFrame: 1024, window: 16384, baud: BAUD },
      undefined,
      undefined,
      randomBytes(32),
    );
    a.write(encodeLinkFrame({ type: FrameType.Hello, flags: 0, session: id, seq: 0, ack: 0, body: hello }));
    await wait(300);
    a.write(
      encodeLinkFrame({ type: FrameType.Data, flags: 0, session: id, seq: 0, ack: 0, body: fourFrames() }),
    );
    // the owner's session id is on the wire in clear: a reset and a put.begin injected at its current offsets
    a.write(
      encodeLinkFrame({
        type: FrameType.Rst,
        flags: 0,
        session: session.id,
        seq: 0,
        ack: 0,
        body: Buffer.alloc(0),
      }),
    );
    const put = encodeFrame({
      t: "put.begin",
      id: 999,
      kind: "file",
      path: "evil.sh",
      size: 1,
      sha256: "0".repeat(64),
    });
    for (let seq = 0; seq < 4000; seq += 500) {
      a.write(
        encodeLinkFrame({ type: FrameType.Data, flags: 0, session: session.id, seq, ack: 0, body: put }),
      );
    }
    await wait(1000);
    await a.close();
    expect(session.isClosed).toBe(false);
    expect(t.link.current).toBe(session);
    expect((await client.list()).models).toEqual([]); // the owner's session answers as before
    await client.close();
    await t.close();
    expect(boardFiles(home)).toEqual(before);
    expect(agent.stderr()).not.toMatch(/session 5eed5eed opened/);
    expect(agent.stderr()).toMatch(/forged frame\(s\) dropped/);
  }, 60_000);

  it("a recorded session replayed byte for byte gets a fresh nonce and nothing else", async () => {
    // the owner's session through a line that records every byte the host sent
    const rec = await attacker();
    const link = new Link(rec, () => secret, { baud: BAUD, deadAfterMs: 5000 }, "recorder");
    const s = await link.connect();
    const client = new AgentClient(channelOf(s), "pty-board");
    await authenticate(client, secret);
    await client.hello();
    await client.list();
    await client.close();
    await rec.close();
    const recorded = Buffer.concat(rec.recorded);
    const before = boardFiles(home);
    const log = agent.stderr().length;
    // the replay: same HELLO (same session id and nonce), same tagged frames
    const a = await attacker();
    a.write(recorded);
    await wait(1500);
    const replies = a.frames.filter((f) => f.session === s.id && f.type === FrameType.Data);
    expect(replies).toEqual([]); // the board's new nonce made a new key: the old tags prove nothing
    expect(a.frames.some((f) => f.session === s.id && f.type === FrameType.HelloAck)).toBe(true);
    expect(agent.stderr().slice(log)).not.toMatch(/opened/);
    expect(boardFiles(home)).toEqual(before);
    await a.close();
  }, 60_000);

  it("the owner with a wrong device secret: a clear error naming the board, exit code 2", async () => {
    const t = await owner(randomBytes(32));
    await expectWrongSecret(t, "pty-board");
    await t.close();
  }, 60_000);
});
