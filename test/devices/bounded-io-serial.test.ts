import { afterEach, describe, expect, it } from "vitest";
import { FrameType, type RawFrame } from "../../devices/serial/frames.js";
import { emptyStats, withDefaults } from "../../devices/serial/options.js";
import { LinkSession } from "../../devices/serial/session.js";

const sessions: LinkSession[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.close("killed");
});

/** A session whose line goes nowhere, with the default 16 KiB window and 1 KiB frames. */
function session(): { s: LinkSession; received: Buffer[] } {
  const opts = withDefaults({});
  const negotiated = { version: 1, capabilities: [], maxFrame: 1024, window: 16 * 1024, peer: "hostile" };
  // frames go to receive() directly, past the Link that checks their tags
  const auth = { key: Buffer.alloc(32, 1), role: "board" as const };
  const s = new LinkSession({ write: () => {}, onData: () => {} }, 7, negotiated, opts, emptyStats(), auth);
  sessions.push(s);
  const received: Buffer[] = [];
  s.readable.on("data", (b: Buffer) => received.push(b));
  return { s, received };
}

function data(seq: number, body: Buffer): RawFrame {
  return { type: FrameType.Data, flags: 0, session: 7, seq, ack: 0, body };
}

describe("serial out-of-order buffer", () => {
  it("stays within its byte limit whatever a peer sends ahead of a hole, and the real stream still gets through", async () => {
    const { s, received } = session();
    expect(s.oooLimit).toBe(64 * 1024);
    // 1 KiB frames at every offset in the window ahead of a 1-byte hole (the old bound kept up to 64 Ki of them,
    // 64 MiB), then far ahead, then empty frames at many offsets
    for (let seq = 1; seq < 4 * 16 * 1024; seq += 7) s.receive(data(seq, Buffer.alloc(1024, 1)));
    for (let k = 0; k < 1000; k++) s.receive(data(1_000_000 + k * 4096, Buffer.alloc(4096, 2)));
    for (let seq = 2; seq < 60_000; seq += 3) s.receive(data(seq, Buffer.alloc(0)));
    expect(s.outOfOrderBytes).toBeLessThanOrEqual(s.oooLimit);
    expect(s.outOfOrderBytes).toBeGreaterThan(0);
    expect(s.stats.oooDropped).toBeGreaterThan(9000);
    // the hole is filled: what was held follows in order, what was dropped comes again from the sender
    s.receive(data(0, Buffer.from([9])));
    await new Promise((r) => setImmediate(r));
    const got = Buffer.concat(received);
    expect(got[0]).toBe(9);
    expect(got.length).toBeGreaterThan(1);
    expect(got.subarray(1).every((b) => b === 1)).toBe(true);
    expect(s.outOfOrderBytes).toBeLessThanOrEqual(s.oooLimit);
  });

  it("keeps frames that arrive out of order within the window and delivers them once the hole fills", async () => {
    const { s, received } = session();
    const stream = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 256));
    const frames = [];
    for (let off = 0; off < stream.length; off += 1000)
      frames.push(data(off, stream.subarray(off, off + 1000)));
    for (const f of frames.slice(1).reverse()) s.receive(f);
    expect(s.outOfOrderBytes).toBe(4 * (1000 + 64));
    s.receive(frames[0]!);
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(received).equals(stream)).toBe(true);
    expect(s.outOfOrderBytes).toBe(0);
    expect(s.stats.oooDropped).toBe(0);
  });
});
