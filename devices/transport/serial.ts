/**
 * Boards on a serial line (a UART, a USB serial gadget): the agent runs on the board already, listening on its tty
 * (`agent.mjs --serial /dev/ttyGS0`, e.g. from the systemd unit qat-agent.service), and each `spawn` of the agent
 * opens a new link session to it. The link layer (devices/serial/link.ts) gives the AgentClient the same reliable
 * byte stream an SSH channel gives. There is no shell on the other end: `exec` is refused with a clear error.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { SerialPort } from "serialport";
import { AgentNotInstalledError, AuthError, ConnectError, DeviceError } from "../errors.js";
import { Link } from "../serial/link.js";
import type { ByteLine, LinkOptions, LinkStats } from "../serial/options.js";
import type { LinkSession } from "../serial/session.js";
import { explainOpenError } from "../serial/tty.js";
import type { Channel, ExecResult, Transport } from "./channel.js";

export const DEFAULT_BAUD = 115200;

export interface SerialOptions extends LinkOptions {
  /** The host's tty, e.g. /dev/ttyUSB0. */
  path: string;
  baud?: number;
  /** The agent home on the board (informational: the running agent has its own). */
  home?: string;
  /** The device, for messages. */
  device?: string;
  /** The device secret (the registry's; `qat device setup` made it). */
  secret?: Uint8Array;
}

/** Open a tty on the host with serialport, raw 8N1 at `baud`, as a ByteLine. */
async function openHostLine(
  path: string,
  baud: number,
  device: string,
): Promise<ByteLine & { port: SerialPort }> {
  const port = new SerialPort({ path, baudRate: baud, autoOpen: false, lock: true, hupcl: false });
  try {
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  } catch (e) {
    const x = explainOpenError(path, e);
    throw new ConnectError(x.code, x.message, { device, hint: x.hint, exitCode: 1, cause: e });
  }
  port.on("error", () => {
    // reported through the session (keepalives stop)
  });
  return {
    port,
    write: (b) => {
      if (port.isOpen) port.write(b);
    },
    onData: (l) => port.on("data", l),
  };
}

export class SerialTransport implements Transport {
  readonly kind = "serial" as const;
  readonly label: string;
  /** The board's agent is already running: there is no node command to run. */
  readonly node: string[] = [];
  readonly home: string;
  readonly path: string;
  readonly baud: number;
  /** The device secret: authenticates each link session (handshake.ts) and the agent session inside it. */
  secret?: Uint8Array;
  private session?: LinkSession;

  constructor(
    private readonly line: ByteLine & { port: SerialPort },
    readonly link: Link,
    opts: SerialOptions,
  ) {
    this.path = opts.path;
    this.baud = opts.baud ?? DEFAULT_BAUD;
    this.label = opts.device ?? `serial://${opts.path}`;
    this.home = opts.home ?? "(the agent's own home)";
  }

  /** Frames, retransmissions, bad frames, bytes of this transport's link so far. */
  get stats(): LinkStats {
    return this.link.stats;
  }

  /** A new session to the agent listening on the board's tty (the argv is that of the agent; not run here). */
  async spawn(argv: string[]): Promise<Channel> {
    if (!argv.some((a) => /agent\.mjs$/.test(a))) {
      throw this.noShell(argv);
    }
    let s: LinkSession;
    try {
      s = await this.link.connect();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "no-device-secret" || code === "link-auth-failed") throw this.authFailure(code, e);
      throw new ConnectError(
        "serial-no-agent",
        `no qat agent answers on ${this.path}: ${(e as Error).message}`,
        {
          device: this.label,
          hint:
            "start the agent on the board (`node <home>/install/<key>/agent.mjs --serial /dev/ttyGS0 --baud " +
            `${this.baud}\`, or the qat-agent.service unit), and check that both ends use ${this.baud} baud`,
          cause: e,
        },
      );
    }
    this.session = s;
    const stderr = new Readable({ read: () => {} });
    const exited = s.closed.then((reason) => {
      if (reason === "dead") {
        stderr.push(
          `serial link on ${this.path} lost: nothing heard from the board for ${Math.round(this.link.options.deadAfterMs / 1000)} s (cable, baud rate, or the agent stopped)\n`,
        );
      } else if (reason === "reset") stderr.push(`the board reset the serial session on ${this.path}\n`);
      stderr.push(null);
      return reason === "clean" ? { code: 0, signal: null } : { code: null, signal: null };
    });
    return {
      stdin: s.writable,
      stdout: s.readable,
      stderr,
      exited,
      kill: () => s.reset("killed"),
    };
  }

  /** The board or this host has no device secret, or the two differ: set the board up again (exit 2). */
  private authFailure(code: string, e: unknown): DeviceError {
    const again = `run \`qat device setup ${this.label}\` again (over ssh or on the board) to give both ends the same secret`;
    return code === "no-device-secret"
      ? new AgentNotInstalledError("no-device-secret", `${this.path}: ${(e as Error).message}`, {
          device: this.label,
          hint: again,
          exitCode: 2,
          cause: e,
        })
      : new AuthError("agent-auth-failed", `${this.path}: ${(e as Error).message}`, {
          device: this.label,
          hint: again,
          exitCode: 2,
          cause: e,
        });
  }

  private noShell(argv: string[]): DeviceError {
    return new DeviceError(
      "serial-no-shell",
      `a serial device runs no commands ('${argv.join(" ")}'); it talks only to the qat agent on its tty`,
      {
        device: this.label,
        hint: "install the agent once over ssh or on the board itself (`qat device setup`), then start it on the tty",
      },
    );
  }

  async exec(argv: string[]): Promise<ExecResult> {
    throw this.noShell(argv);
  }

  async close(): Promise<void> {
    if (this.session && !this.session.isClosed) {
      this.session.end();
      await Promise.race([this.session.closed, new Promise((r) => setTimeout(r, 2000))]);
      if (!this.session.isClosed) this.session.reset("killed");
    }
    await this.closePort();
  }

  abort(): void {
    this.session?.reset("killed");
    void this.closePort();
  }

  private async closePort(): Promise<void> {
    const port = this.line.port;
    if (!port.isOpen) return;
    await new Promise<void>((res) => port.drain(() => port.close(() => res())));
  }
}

/** Open a serial device: the host's tty at the given baud rate, with the link layer on it. */
export async function openSerial(opts: SerialOptions): Promise<SerialTransport> {
  const baud = opts.baud ?? DEFAULT_BAUD;
  const device = opts.device ?? `serial://${opts.path}`;
  const line = await openHostLine(opts.path, baud, device);
  const holder: { t?: SerialTransport } = {};
  const link = new Link(line, () => holder.t?.secret ?? null, { ...opts, baud }, "qat-host");
  holder.t = new SerialTransport(line, link, { ...opts, baud });
  holder.t.secret = opts.secret;
  return holder.t;
}

export interface SerialPortInfo {
  path: string;
  manufacturer?: string;
  serialNumber?: string;
  vendorId?: string;
  productId?: string;
  /** Where the entry came from: udev (serialport's list) or a scan of /dev. */
  source: "udev" | "scan";
}

/**
 * The host's serial ports. serialport lists them through udev; where there is no udev (containers, CI:
 * `spawn udevadm ENOENT`) this falls back to a scan of /dev (ttyUSB*, ttyACM*, ttyAMA*, ttyS*, ttyGS*, serial0,
 * /dev/serial/by-id) and says so in `note`.
 */
export async function listSerialPorts(): Promise<{ ports: SerialPortInfo[]; note?: string }> {
  try {
    const ports = await SerialPort.list();
    return {
      ports: ports.map((p) => ({
        path: p.path,
        manufacturer: p.manufacturer,
        serialNumber: p.serialNumber,
        vendorId: p.vendorId,
        productId: p.productId,
        source: "udev" as const,
      })),
    };
  } catch (e) {
    const why = (e as Error).message;
    const found = new Set<string>();
    try {
      for (const f of readdirSync("/dev")) {
        if (/^(ttyUSB|ttyACM|ttyAMA|ttyGS|ttyS|ttyTHS|rfcomm)\d+$|^serial\d$/.test(f))
          found.add(join("/dev", f));
      }
    } catch {
      // no /dev: nothing to list
    }
    if (existsSync("/dev/serial/by-id")) {
      for (const f of readdirSync("/dev/serial/by-id")) found.add(join("/dev/serial/by-id", f));
    }
    return {
      ports: [...found].sort().map((path) => ({ path, source: "scan" as const })),
      note: `serialport could not list ports through udev (${why}); these come from a scan of /dev, without vendor details`,
    };
  }
}
