/**
 * A fake board for the bounded-I/O tests: a Channel made of in-memory streams, with a script deciding what the
 * "agent" answers to each frame (or that it answers nothing, or stops reading).
 */
import { PassThrough, Writable } from "node:stream";
import { encodeFrame, type Frame, FrameDecoder } from "../../devices/agent/framing.js";
import { PROTOCOL_VERSION } from "../../devices/agent/protocol.js";
import type { Channel } from "../../devices/transport/channel.js";

export interface FakeBoard {
  channel: Channel;
  /** Frames the board received. */
  received: Frame[];
  /** Bytes to the host, raw. */
  send(bytes: Uint8Array): void;
  killed: boolean;
}

/**
 * A board that answers `hello` like an agent and hands every other frame to `answer` (which may reply through
 * `board.send`, or not at all). `stalled`: the board never takes bytes (its stdin never drains).
 */
export function fakeBoard(
  answer: (f: Frame, board: FakeBoard) => void = () => {},
  opts: { stalled?: boolean } = {},
): FakeBoard {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const decoder = new FrameDecoder();
  let exit!: (r: { code: number | null; signal: string | null }) => void;
  const exited = new Promise<{ code: number | null; signal: string | null }>((res) => {
    exit = res;
  });
  const board: FakeBoard = {
    received: [],
    killed: false,
    send: (bytes) => stdout.write(bytes),
    channel: undefined as unknown as Channel,
  };
  const stdin = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, cb) {
      if (opts.stalled) return; // never calls back: the link is stuck
      for (const f of decoder.push(Buffer.from(chunk))) {
        board.received.push(f);
        if (f.header.t === "hello") {
          board.send(encodeFrame({ t: "ok", id: f.header.id, protocol: PROTOCOL_VERSION }));
        } else answer(f, board);
      }
      cb();
    },
  });
  board.channel = {
    stdin,
    stdout,
    stderr,
    exited,
    kill: () => {
      board.killed = true;
      stdout.end();
      exit({ code: null, signal: "SIGKILL" });
    },
  };
  return board;
}
