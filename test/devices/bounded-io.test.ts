import { describe, expect, it } from "vitest";
import {
  encodeFrame,
  encodeHead,
  FrameDecoder,
  FrameTooLargeError,
  MAX_PAYLOAD,
} from "../../devices/agent/framing.js";
import { packTensors, unpackTensor } from "../../devices/agent/tensors.js";
import { AgentClient } from "../../devices/client.js";
import { DeviceTimeoutError, ProtocolError } from "../../devices/errors.js";
import { DEFAULT_TIMEOUTS, limitFor } from "../../devices/request-timeouts.js";
import { fakeBoard } from "./bounded-io-fakes.js";

const MiB = 1 << 20;

/** Decode `bytes` pushed in chunks of `step`, and the time it took. */
function decodeIn(bytes: Buffer, step: number): { frames: ReturnType<FrameDecoder["push"]>; ms: number } {
  const d = new FrameDecoder();
  const frames = [];
  const t0 = performance.now();
  for (let i = 0; i < bytes.length; i += step) frames.push(...d.push(bytes.subarray(i, i + step)));
  return { frames, ms: performance.now() - t0 };
}

describe("frame reassembly", () => {
  it("decodes frames split anywhere, several per chunk, with noise between them", () => {
    const payloads = [3, 0, 70_000, 1, 4099].map((n, k) =>
      Uint8Array.from({ length: n }, (_, i) => (i * 7 + k) % 251),
    );
    const bytes = Buffer.concat(
      payloads.flatMap((p, k) => [Buffer.from(k % 2 ? "noise QA" : ""), encodeFrame({ t: "x", id: k }, p)]),
    );
    for (const step of [1, 5, 11, 12, 13, 4096, 65_536, bytes.length]) {
      const { frames } = decodeIn(bytes, step);
      expect(frames.map((f) => f.header.id)).toEqual([0, 1, 2, 3, 4]);
      frames.forEach((f, k) => {
        expect(Buffer.from(f.payload).equals(Buffer.from(payloads[k]!))).toBe(true);
        expect(f.payload.byteOffset).toBe(0); // its own buffer, aligned for typed-array views
      });
    }
  });

  it("takes linear time: a 16 MiB frame in 64 KiB chunks decodes in well under a second", () => {
    const frame = encodeFrame({ t: "big" }, new Uint8Array(16 * MiB).fill(7));
    const small = decodeIn(encodeFrame({ t: "big" }, new Uint8Array(MiB).fill(7)), 65_536);
    const big = decodeIn(frame, 65_536);
    expect(big.frames).toHaveLength(1);
    expect(big.frames[0]!.payload.length).toBe(16 * MiB);
    // the quadratic decoder took 11.6 s here (16× the bytes cost 256× the time); linear costs about 16×
    expect(big.ms).toBeLessThan(1000);
    expect(big.ms).toBeLessThan(Math.max(200, 64 * small.ms));
  });

  it("refuses a 512 MiB claim from its 12-byte prefix alone, naming the size and the limit", () => {
    const head = encodeHead({ t: "x" }, 0);
    head.writeUInt32BE(512 * MiB, 8);
    const d = new FrameDecoder();
    let err: unknown;
    try {
      d.push(head.subarray(0, 12));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FrameTooLargeError);
    expect((err as FrameTooLargeError).size).toBe(512 * MiB);
    expect((err as FrameTooLargeError).limit).toBe(MAX_PAYLOAD);
    expect((err as Error).message).toMatch(/536870912 bytes \(512\.0 MiB\).*67108864 bytes \(64\.0 MiB\)/);
    expect(() => encodeFrame({ t: "x" }, new Uint8Array(MAX_PAYLOAD + 1))).toThrow(FrameTooLargeError);
  });

  it("holds no bytes between frames, and the frame's bytes while one is incomplete", () => {
    const d = new FrameDecoder();
    const f = encodeFrame({ t: "x" }, new Uint8Array(1000));
    d.push(f.subarray(0, 500));
    expect(d.buffered).toBe(500);
    d.push(f.subarray(500));
    expect(d.buffered).toBe(0);
  });
});

describe("host-side timeouts", () => {
  it("a board that accepts the hello and then never answers fails within the limit, naming board and request", async () => {
    const board = fakeBoard(); // answers nothing but hello
    const client = new AgentClient(board.channel, "ssh://pi@10.0.0.9", {
      timeouts: { requestMs: 300, idleMs: 300 },
    });
    await client.hello();
    const t0 = Date.now();
    const err = await client.facts().catch((e: unknown) => e);
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(DeviceTimeoutError);
    expect((err as DeviceTimeoutError).code).toBe("request-timeout");
    expect((err as DeviceTimeoutError).request).toBe("facts");
    expect((err as Error).message).toMatch(
      /^ssh:\/\/pi@10\.0\.0\.9: the board did not answer 'facts' \(request 2\) within 300 ms/,
    );
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2000);
    expect(board.killed).toBe(true);
    // the client is closed: later requests fail at once with the same error
    await expect(client.current()).rejects.toBe(err);
  });

  it("a board that stops reading mid-request fails on the idle limit", async () => {
    const board = fakeBoard(undefined, { stalled: true });
    const client = new AgentClient(board.channel, "emulated:rpi4", {
      timeouts: { requestMs: 60_000, idleMs: 300 },
    });
    const t0 = Date.now();
    const err = await client
      .runBatch(1, [{ name: "x", dtype: "float32", dims: [4, 1 << 18], data: new Float32Array(1 << 20) }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceTimeoutError);
    expect((err as DeviceTimeoutError).code).toBe("idle-timeout");
    expect((err as Error).message).toMatch(
      /^emulated:rpi4: 'evaluate\.batch' \(request 1\): the board stopped taking our bytes/,
    );
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("a reply that stops halfway fails on the idle limit, saying how much arrived", async () => {
    const board = fakeBoard((f, b) => {
      const whole = encodeFrame({ t: "ok", id: f.header.id, facts: {} }, new Uint8Array(MiB));
      b.send(whole.subarray(0, 5000));
    });
    const client = new AgentClient(board.channel, "serial:/dev/ttyUSB0", {
      timeouts: { requestMs: 60_000, idleMs: 300 },
    });
    const err = await client.facts().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceTimeoutError);
    expect((err as Error).message).toMatch(/'facts' \(request 1\): a reply stopped after 5000 bytes/);
  });

  it("a board claiming a 512 MiB frame is refused at once, before its bytes arrive", async () => {
    const board = fakeBoard((f, b) => {
      const head = encodeHead({ t: "ok", id: f.header.id }, 0);
      head.writeUInt32BE(512 * MiB, 8);
      b.send(head);
    });
    const client = new AgentClient(board.channel, "local");
    const t0 = Date.now();
    const err = await client.facts().catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe("frame-too-large");
    expect((err as Error).message).toMatch(
      /536870912 bytes \(512\.0 MiB\) exceeds the limit of 67108864 bytes/,
    );
    expect(board.killed).toBe(true);
  });

  it("gives slow requests longer by default", () => {
    expect(limitFor(DEFAULT_TIMEOUTS, { t: "facts" })).toBe(120_000);
    expect(limitFor(DEFAULT_TIMEOUTS, { t: "trt.build" })).toBe(3_600_000);
    expect(limitFor(DEFAULT_TIMEOUTS, { t: "evaluate.open", runtime: "tensorrt" })).toBe(3_600_000);
    expect(limitFor(DEFAULT_TIMEOUTS, { t: "evaluate.open" })).toBe(600_000);
  });
});

describe("batches over the frame limit", () => {
  /** A board that runs "evaluate.batch" as identity: each input back as an output, and the labels' count as hits. */
  const echo = fakeBoard((f, b) => {
    const inputs = (f.header.inputs as Parameters<typeof unpackTensor>[0][]).map((r) => ({
      name: "y",
      dtype: r.dtype,
      dims: r.dims,
      data: unpackTensor(r, f.payload),
    }));
    const { refs, payload } = packTensors(inputs);
    const n = inputs[0]!.dims[0]!;
    b.send(
      encodeFrame(
        {
          t: "ok",
          id: f.header.id,
          outputs: refs,
          ms: n,
          perSampleMs: 1,
          correct: n,
          maxRSS: 10 + n,
          runtime: "onnxruntime",
        },
        payload,
      ),
    );
  });

  it("are sent in parts that fit, and the parts' results joined in order", async () => {
    const client = new AgentClient(echo.channel, "local", { maxPayload: 64 * 1024 });
    const n = 40;
    const x = Float32Array.from({ length: n * 1000 }, (_, i) => i); // 4000 bytes a sample and 8 of label, 160 kB in all
    const labels = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
    const r = await client.runBatch(1, [{ name: "x", dtype: "float32", dims: [n, 1000], data: x }], labels);
    const sent = echo.received.filter((f) => f.header.t === "evaluate.batch");
    expect(sent.length).toBe(3);
    for (const f of sent) expect(f.payload.length).toBeLessThanOrEqual(64 * 1024);
    expect(sent.map((f) => (f.header.inputs as { dims: number[] }[])[0]!.dims[0])).toEqual([16, 16, 8]); // 4008 bytes a sample (with its label): 16 fit in 64 KiB less the slack;
    expect(r.outputs[0]!.dims).toEqual([n, 1000]);
    expect(Array.from(r.outputs[0]!.data as Float32Array)).toEqual(Array.from(x));
    expect(r.correct).toBe(n);
    expect(r.ms).toBe(n);
    expect(r.maxRSS).toBe(26); // the peak of the parts (10 + 16), not a sum
  });

  it("a sample bigger than the limit is refused with a clear error", async () => {
    const client = new AgentClient(echo.channel, "local", { maxPayload: 1024 });
    await expect(
      client.runBatch(1, [{ name: "x", dtype: "float32", dims: [2, 1000], data: new Float32Array(2000) }]),
    ).rejects.toThrow(/one sample takes 4000 bytes, over the frame limit of 1024/);
  });
});
