/**
 * The device registry: named boards in a JSON file (~/.config/qat/devices.json, or $QAT_DEVICES, or a path given
 * by the caller). Device URIs: `ssh://user@host[:port]` (host may be an ~/.ssh/config alias), `local`,
 * `emulated:rpi4`, `emulated:x64-haswell`, `serial:///dev/ttyUSB0?baud=921600` (options: baud, frame, window,
 * dead = seconds). With no device configured, the emulated Raspberry Pi 4 is the default.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../src/util/atomic.js";
import { readDeviceSecret, removeDeviceSecret } from "./device-secrets.js";
import { RegistryError } from "./errors.js";
import type { Transport } from "./transport/channel.js";
import {
  EMULATED_BOARDS,
  type EmulatedBoard,
  type EmulatorOptions,
  emulatedTransport,
  ensureEmulator,
} from "./transport/emulator.js";
import { LocalTransport } from "./transport/local.js";
import { openSerial } from "./transport/serial.js";
import { connectSsh } from "./transport/ssh.js";

export type DeviceAddress =
  | { kind: "local" }
  | { kind: "emulated"; board: EmulatedBoard }
  | { kind: "ssh"; host: string; user?: string; port?: number }
  | { kind: "serial"; path: string; baud: number; maxFrame?: number; window?: number; deadAfterMs?: number };

const SERIAL_PARAMS = new Set(["baud", "frame", "window", "dead"]);

function parseSerialUri(uri: string): DeviceAddress {
  const m = /^serial:\/\/(\/[^?#\s]+)(?:\?([^#\s]*))?$/.exec(uri);
  if (!m) {
    throw new RegistryError("bad-uri", `'${uri}' is not a serial device URI`, {
      hint: "use serial:///dev/ttyUSB0?baud=921600 (an absolute tty path after serial://)",
    });
  }
  const q = new URLSearchParams(m[2] ?? "");
  for (const k of q.keys()) {
    if (!SERIAL_PARAMS.has(k)) {
      throw new RegistryError("bad-uri", `unknown option '${k}' in '${uri}'`, {
        hint: "serial options: baud, frame (bytes, 32–4096), window (bytes), dead (seconds)",
      });
    }
  }
  const num = (k: string, lo: number, hi: number): number | undefined => {
    const v = q.get(k);
    if (v === null) return undefined;
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v) || n < lo || n > hi) {
      throw new RegistryError("bad-uri", `${k}=${v} in '${uri}' is not a number in ${lo}–${hi}`);
    }
    return n;
  };
  const dead = num("dead", 1, 3600);
  return {
    kind: "serial",
    path: decodeURIComponent(m[1]!),
    baud: Math.round(num("baud", 50, 20_000_000) ?? 115200),
    maxFrame: num("frame", 32, 4096),
    window: num("window", 64, 1 << 20),
    deadAfterMs: dead === undefined ? undefined : dead * 1000,
  };
}

export interface DeviceEntry {
  name: string;
  uri: string;
  /** ssh: private key file. */
  key?: string;
  /** The board's node command (a path, e.g. /home/pi/.nvm/versions/node/v20.11.0/bin/node). */
  node?: string;
  /** The agent's home on the board. */
  home?: string;
  /** ssh: record the host key on first contact. */
  acceptNew?: boolean;
  knownHostsFile?: string;
  sshConfigFile?: string;
  connectTimeoutMs?: number;
  addedAt?: string;
}

export interface RegistryFile {
  version: 1;
  default?: string;
  devices: DeviceEntry[];
}

export interface RegistryOptions {
  /** The registry file (default $QAT_DEVICES, else $XDG_CONFIG_HOME/qat/devices.json, else ~/.config/qat/devices.json). */
  path?: string;
}

export const DEFAULT_DEVICE_URI = "emulated:rpi4";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function registryPath(opts: RegistryOptions = {}): string {
  if (opts.path) return opts.path;
  if (process.env.QAT_DEVICES) return process.env.QAT_DEVICES;
  const xdg = process.env.XDG_CONFIG_HOME;
  return join(xdg?.startsWith("/") ? xdg : join(homedir(), ".config"), "qat", "devices.json");
}

/** Parse a device URI. Raises RegistryError (exit 2) saying what a valid one looks like. */
export function parseDeviceUri(uri: string): DeviceAddress {
  if (uri === "local") return { kind: "local" };
  if (uri.startsWith("emulated:")) {
    const board = uri.slice("emulated:".length);
    if ((EMULATED_BOARDS as readonly string[]).includes(board))
      return { kind: "emulated", board: board as EmulatedBoard };
    throw new RegistryError("bad-uri", `unknown emulated board '${board}' in '${uri}'`, {
      hint: `the emulated boards are ${EMULATED_BOARDS.map((b) => `emulated:${b}`).join(", ")}`,
    });
  }
  if (uri.startsWith("serial:")) return parseSerialUri(uri);
  const m = /^ssh:\/\/(?:([^@/:\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^@/:\s[\]]+)(?::(\d+))?\/?$/.exec(uri);
  if (m) {
    const port = m[3] === undefined ? undefined : Number(m[3]);
    if (port !== undefined && (port < 1 || port > 65535)) {
      throw new RegistryError("bad-uri", `port ${port} in '${uri}' is not 1–65535`);
    }
    const host = m[2]!.startsWith("[") ? m[2]!.slice(1, -1) : m[2]!;
    return { kind: "ssh", host, user: m[1], port };
  }
  throw new RegistryError("bad-uri", `'${uri}' is not a device URI`, {
    hint: "use ssh://user@host[:port], serial:///dev/ttyUSB0?baud=921600, local, emulated:rpi4 or emulated:x64-haswell",
  });
}

export function readRegistry(opts: RegistryOptions = {}): RegistryFile {
  const path = registryPath(opts);
  if (!existsSync(path)) return { version: 1, devices: [] };
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new RegistryError("bad-registry", `${path} is not valid JSON (${(e as Error).message})`, {
      hint: "fix or delete the file",
    });
  }
  const f = data as RegistryFile;
  if (typeof f !== "object" || f === null || f.version !== 1 || !Array.isArray(f.devices)) {
    throw new RegistryError(
      "bad-registry",
      `${path} is not a qat device registry (version 1 with a devices list)`,
      {
        hint: "fix or delete the file",
      },
    );
  }
  for (const d of f.devices) {
    if (typeof d?.name !== "string" || typeof d.uri !== "string") {
      throw new RegistryError("bad-registry", `${path}: every device needs a name and a uri`, {
        hint: "fix or delete the file",
      });
    }
  }
  return f;
}

function writeRegistry(f: RegistryFile, opts: RegistryOptions): void {
  const path = registryPath(opts);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, `${JSON.stringify(f, null, 2)}\n`);
}

export function listDevices(opts: RegistryOptions = {}): DeviceEntry[] {
  const devices = readRegistry(opts).devices;
  for (const d of devices) readFrom.set(d, registryPath(opts));
  return devices;
}

/** Add a device (or replace it with `replace`). Validates the name and URI. */
export function addDevice(
  entry: DeviceEntry,
  opts: RegistryOptions & { replace?: boolean; makeDefault?: boolean } = {},
): DeviceEntry {
  if (!NAME.test(entry.name)) {
    throw new RegistryError("bad-name", `'${entry.name}' is not a device name`, {
      hint: "use letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit",
    });
  }
  const addr = parseDeviceUri(entry.uri);
  if (addr.kind !== "ssh" && (entry.key || entry.acceptNew || entry.knownHostsFile)) {
    throw new RegistryError(
      "bad-option",
      `key, acceptNew and knownHostsFile apply to ssh:// devices, not '${entry.uri}'`,
      {
        device: entry.name,
      },
    );
  }
  const f = readRegistry(opts);
  const at = f.devices.findIndex((d) => d.name === entry.name);
  if (at >= 0 && !opts.replace) {
    throw new RegistryError(
      "exists",
      `a device named '${entry.name}' already exists (${f.devices[at]!.uri})`,
      {
        hint: "remove it first, or choose another name",
      },
    );
  }
  const stored: DeviceEntry = { ...entry, addedAt: entry.addedAt ?? new Date().toISOString() };
  if (at >= 0) f.devices[at] = stored;
  else f.devices.push(stored);
  if (opts.makeDefault) f.default = entry.name;
  writeRegistry(f, opts);
  return stored;
}

export function removeDevice(name: string, opts: RegistryOptions = {}): DeviceEntry {
  const f = readRegistry(opts);
  const at = f.devices.findIndex((d) => d.name === name);
  if (at < 0)
    throw new RegistryError("unknown-device", `no device named '${name}' in ${registryPath(opts)}`, {
      hint: "see `qat device list`",
    });
  const [gone] = f.devices.splice(at, 1);
  if (f.default === name) delete f.default;
  writeRegistry(f, opts);
  removeDeviceSecret(registryPath(opts), name);
  return gone!;
}

/**
 * The device to use: a registry name, a URI, or (nothing given) the registry's default — the only device when
 * there is one, the emulated Raspberry Pi 4 when there is none.
 */
export function resolveDevice(nameOrUri: string | undefined, opts: RegistryOptions = {}): DeviceEntry {
  const entry = resolveEntry(nameOrUri, opts);
  readFrom.set(entry, registryPath(opts));
  return entry;
}

/** The registry file each resolved entry came from: openDevice finds the device's secret beside it. */
const readFrom = new WeakMap<DeviceEntry, string>();

/** The registry file an entry was resolved from (resolveDevice, listDevices), else the default one. */
export function registryOf(entry: DeviceEntry): string {
  return readFrom.get(entry) ?? registryPath();
}

function resolveEntry(nameOrUri: string | undefined, opts: RegistryOptions): DeviceEntry {
  const f = readRegistry(opts);
  if (nameOrUri === undefined) {
    if (f.default) return resolveEntry(f.default, opts);
    if (f.devices.length === 1) return f.devices[0]!;
    if (f.devices.length === 0) return { name: DEFAULT_DEVICE_URI, uri: DEFAULT_DEVICE_URI };
    throw new RegistryError(
      "ambiguous-device",
      `${f.devices.length} devices are registered and none is the default`,
      {
        hint: `pass --device with one of: ${f.devices.map((d) => d.name).join(", ")}`,
      },
    );
  }
  const named = f.devices.find((d) => d.name === nameOrUri);
  if (named) return named;
  if (nameOrUri === "local" || nameOrUri.startsWith("emulated:") || nameOrUri.includes("://")) {
    parseDeviceUri(nameOrUri);
    return { name: nameOrUri, uri: nameOrUri };
  }
  throw new RegistryError("unknown-device", `no device named '${nameOrUri}' in ${registryPath(opts)}`, {
    hint: "add it with `qat device add NAME URI`, or give a URI (ssh://user@host, serial:///dev/ttyUSB0, local, emulated:rpi4)",
  });
}

export interface OpenOptions {
  /** Emulator options (cache folder, arm64 Node version) for emulated devices. */
  emulator?: EmulatorOptions;
  /** ssh: passphrase for an encrypted key; ssh-agent socket. */
  passphrase?: string;
  agent?: string | false;
}

/**
 * Connect to a device: a transport to run the agent on, carrying the device's secret from this host's registry.
 * Close it when done.
 */
export async function openDevice(entry: DeviceEntry, opts: OpenOptions = {}): Promise<Transport> {
  const t = await openTransport(entry, opts);
  const secret = readDeviceSecret(registryOf(entry), entry.name);
  if (secret) t.secret = secret;
  return t;
}

async function openTransport(entry: DeviceEntry, opts: OpenOptions): Promise<Transport> {
  const addr = parseDeviceUri(entry.uri);
  const node = entry.node ? [entry.node] : undefined;
  switch (addr.kind) {
    case "local":
      return new LocalTransport({ node, home: entry.home, label: entry.name });
    case "emulated": {
      const emu = await ensureEmulator({ ...opts.emulator, board: addr.board });
      return emulatedTransport(emu, { home: entry.home, label: entry.name });
    }
    case "serial":
      return openSerial({
        path: addr.path,
        baud: addr.baud,
        maxFrame: addr.maxFrame,
        window: addr.window,
        deadAfterMs: addr.deadAfterMs,
        home: entry.home,
        device: entry.name,
      });
    case "ssh":
      return connectSsh({
        host: addr.host,
        user: addr.user,
        port: addr.port,
        identityFiles: entry.key ? [entry.key] : undefined,
        passphrase: opts.passphrase,
        agent: opts.agent,
        acceptNew: entry.acceptNew,
        knownHostsFile: entry.knownHostsFile,
        configFile: entry.sshConfigFile,
        connectTimeoutMs: entry.connectTimeoutMs,
        node,
        home: entry.home,
        device: entry.name,
      });
  }
}
