/**
 * A real tty under the link: opening it raw with serialport's native binding (host and board), explaining why it
 * would not open, and the board's loop that answers hosts on it one session after another.
 *
 * Board-side code: Node built-ins only; installed beside the agent as serial-tty.mjs.
 */
import type { Readable, Writable } from "node:stream";
import { Link, type SecretSource } from "./link.js";
import type { ByteLine, LinkOptions } from "./options.js";

interface PortBinding {
  read(buffer: Buffer, offset: number, length: number): Promise<{ bytesRead: number }>;
  write(buffer: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** Explain a failed open of a tty: the errno, and what to do about it. */
export function explainOpenError(path: string, e: unknown): { code: string; message: string; hint: string } {
  const msg = (e as Error)?.message ?? String(e);
  if (/EACCES|permission denied/i.test(msg)) {
    return {
      code: "serial-permission",
      message: `permission denied opening ${path}`,
      hint:
        "add your user to the group owning the port (usually dialout: `sudo usermod -aG dialout $USER`, then log in " +
        "again), or check `ls -l " +
        path +
        "`",
    };
  }
  if (/ENOENT|no such file/i.test(msg)) {
    return {
      code: "serial-missing",
      message: `${path} does not exist`,
      hint: "check the cable and the device name (`qat device ports` lists serial ports)",
    };
  }
  if (/EBUSY|lock|Resource temporarily unavailable/i.test(msg)) {
    return {
      code: "serial-busy",
      message: `${path} is in use by another program (${msg})`,
      hint: "close the other program (a terminal, ModemManager, another qat) and try again",
    };
  }
  return {
    code: "serial-open",
    message: `cannot open ${path}: ${msg}`,
    hint: "check the port and its settings",
  };
}

/** Open a tty raw at `baud` (8N1, no flow control) as a ByteLine, through @serialport/bindings-cpp. */
export async function openTtyLine(
  req: (id: string) => unknown,
  path: string,
  baud: number,
): Promise<ByteLine & { close(): Promise<void>; closed: Promise<Error | null> }> {
  const { autoDetect } = req("@serialport/bindings-cpp") as {
    autoDetect(): { open(o: Record<string, unknown>): Promise<PortBinding> };
  };
  const port = await autoDetect().open({
    path,
    baudRate: baud,
    dataBits: 8,
    stopBits: 1,
    parity: "none",
    rtscts: false,
    xon: false,
    xoff: false,
    xany: false,
    hupcl: false,
    lock: true,
  });
  const listeners: ((b: Buffer) => void)[] = [];
  let writing: Promise<void> = Promise.resolve();
  let open = true;
  let resolveClosed!: (e: Error | null) => void;
  const closed = new Promise<Error | null>((r) => {
    resolveClosed = r;
  });
  void (async () => {
    const buf = Buffer.alloc(64 * 1024);
    while (open) {
      try {
        const { bytesRead } = await port.read(buf, 0, buf.length);
        const copy = Buffer.from(buf.subarray(0, bytesRead));
        for (const l of listeners) l(copy);
      } catch (e) {
        open = false;
        resolveClosed((e as { canceled?: boolean }).canceled ? null : (e as Error));
        return;
      }
    }
  })();
  return {
    write(bytes: Buffer): void {
      if (!open) return;
      writing = writing.then(() => port.write(bytes)).catch(() => {});
    },
    onData(l: (b: Buffer) => void): void {
      listeners.push(l);
    },
    async close(): Promise<void> {
      if (!open) return;
      await writing;
      open = false;
      await port.close().catch(() => {});
      resolveClosed(null);
    },
    closed,
  };
}

export interface TtyServeOptions extends LinkOptions {
  /** The tty, e.g. /dev/ttyGS0 or /dev/serial0. */
  path: string;
  baud: number;
  /** A require() that finds @serialport/bindings-cpp (the agent's install folder). */
  require: (id: string) => unknown;
  /** The device secret, read per handshake (null: the board was set up before sessions were authenticated). */
  secret: SecretSource;
  /** Serve one session's byte stream (the agent's `serve`). */
  serve: (input: Readable, output: Writable) => Promise<void>;
  log?: (message: string) => void;
}

/** Board side: answer hosts on a tty, one session after another, until the tty fails. */
export async function serveTty(o: TtyServeOptions): Promise<void> {
  const log = o.log ?? (() => {});
  let line: Awaited<ReturnType<typeof openTtyLine>>;
  try {
    line = await openTtyLine(o.require, o.path, o.baud);
  } catch (e) {
    const x = explainOpenError(o.path, e);
    throw new Error(`${x.message} — ${x.hint}`);
  }
  const link = new Link(line, o.secret, o, "qat-agent");
  let previous: Promise<void> = Promise.resolve();
  link.listen((s) => {
    log(
      `session ${s.id.toString(16)} opened (frame ${s.negotiated.maxFrame}, window ${s.negotiated.window})`,
    );
    previous = previous.then(async () => {
      try {
        if (!s.isClosed) await o.serve(s.readable, s.writable);
      } catch (e) {
        log(`session ${s.id.toString(16)} failed: ${(e as Error).message}`);
      }
      s.end();
      const why = await Promise.race([
        s.closed,
        new Promise<string>((r) => setTimeout(() => r("timeout"), 5000)),
      ]);
      if (why === "timeout") s.close("dead");
      const st = link.stats;
      const odd = st.forged || st.unprovenHellos;
      log(
        `session ${s.id.toString(16)} closed (${s.closeReason ?? why})${odd ? `; on this line so far ${st.forged} forged frame(s) dropped, ${st.unprovenHellos} unproven HELLO(s)` : ""}`,
      );
    });
  });
  log(`listening on ${o.path} at ${o.baud} baud`);
  const err = await line.closed;
  link.shutdown();
  if (err) throw new Error(`${o.path} failed: ${err.message}`);
}
