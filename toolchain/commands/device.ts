import { Command, Option } from "commander";
import { detectBoard } from "../../devices/boards.js";
import { listModels } from "../../devices/deploy.js";
import { RegistryError } from "../../devices/errors.js";
import {
  addDevice,
  type DeviceEntry,
  listDevices,
  openDevice,
  parseDeviceUri,
  readRegistry,
  registryPath,
  removeDevice,
  resolveDevice,
} from "../../devices/registry.js";
import { connectAgent, setupDevice } from "../../devices/setup.js";
import type { Transport } from "../../devices/transport/channel.js";
import {
  EMULATED_BOARDS,
  type EmulatedBoard,
  emulatedBoard,
  emulatorPrerequisites,
  ensureEmulator,
} from "../../devices/transport/emulator.js";
import { listSerialPorts } from "../../devices/transport/serial.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";

/** The registry file given with the global --devices (or $QAT_DEVICES, or the default). */
export function registryOpts(cmd: Command): { path?: string } {
  const g = cmd.optsWithGlobals() as { devices?: string };
  return g.devices ? { path: g.devices } : {};
}

/** Open a device, run `fn`, and always close the link. */
export async function withDevice<T>(entry: DeviceEntry, fn: (t: Transport) => Promise<T>): Promise<T> {
  const t = await openDevice(entry);
  try {
    return await fn(t);
  } finally {
    await t.close().catch(() => {});
  }
}

function secs(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`${flag} must be a positive number of seconds, got '${v}'`);
  return Math.round(n * 1000);
}

interface AddFlags {
  key?: string;
  node?: string;
  home?: string;
  acceptNew?: boolean;
  knownHosts?: string;
  sshConfig?: string;
  connectTimeout?: string;
  default?: boolean;
  replace?: boolean;
  emulated?: string;
  json?: boolean;
}

function describe(d: DeviceEntry, isDefault: boolean): string {
  return `${isDefault ? "* " : "  "}${d.name.padEnd(16)} ${d.uri}`;
}

/** `qat device …`: the device registry, setup, the emulated board, models on a board, serial ports. */
export function deviceCommand(): Command {
  const device = new Command("device").description("boards: register, set up, inspect (devices.json)");

  device
    .command("add")
    .description(
      "register a board: ssh://user@host[:port], serial:///dev/ttyUSB0?baud=921600, local, emulated:rpi4, emulated:x64-haswell",
    )
    .argument("<name>", "a name for the board")
    .argument("[uri]", "where it is")
    .option(
      "--emulated <board>",
      "an emulated board instead of a URI: rpi4 (Raspberry Pi 4, arm64) or x64-haswell (x86-64 without VNNI)",
    )
    .option("--key <file>", "ssh: private key file")
    .option("--node <path>", "the board's node command")
    .option("--home <dir>", "the agent's home on the board")
    .option("--accept-new", "ssh: record the host key on first contact", false)
    .option("--known-hosts <file>", "ssh: known_hosts file")
    .option("--ssh-config <file>", "ssh: config file")
    .option("--connect-timeout <secs>", "ssh: connection timeout")
    .option("--default", "make it the default device", false)
    .option("--replace", "replace a device of the same name", false)
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action((name: string, uri: string | undefined, f: AddFlags, cmd: Command) => {
      if ((uri === undefined) === (f.emulated === undefined)) {
        throw new UsageError(
          "give either a URI or --emulated <board> (e.g. `qat device add pi-emu --emulated rpi4`)",
        );
      }
      const target = uri ?? `emulated:${f.emulated}`;
      const entry: DeviceEntry = {
        name,
        uri: target,
        ...(f.key ? { key: f.key } : {}),
        ...(f.node ? { node: f.node } : {}),
        ...(f.home ? { home: f.home } : {}),
        ...(f.acceptNew ? { acceptNew: true } : {}),
        ...(f.knownHosts ? { knownHostsFile: f.knownHosts } : {}),
        ...(f.sshConfig ? { sshConfigFile: f.sshConfig } : {}),
        ...(f.connectTimeout ? { connectTimeoutMs: secs(f.connectTimeout, "--connect-timeout") } : {}),
      };
      const opts = registryOpts(cmd);
      const stored = addDevice(entry, { ...opts, replace: f.replace, makeDefault: f.default });
      emit(f, `added ${stored.name} (${stored.uri}) to ${registryPath(opts)}`, {
        device: stored,
        registry: registryPath(opts),
      });
    });

  device
    .command("list")
    .description("the registered boards (* marks the default)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action((f: { json?: boolean }, cmd: Command) => {
      const opts = registryOpts(cmd);
      const reg = readRegistry(opts);
      const implicit = !reg.default && reg.devices.length === 1 ? reg.devices[0]!.name : undefined;
      const def = reg.default ?? implicit;
      const lines = reg.devices.length
        ? reg.devices.map((d) => describe(d, d.name === def))
        : [`no devices in ${registryPath(opts)}; the default is the emulated Raspberry Pi 4 (emulated:rpi4)`];
      emit(f, lines.join("\n"), { registry: registryPath(opts), default: def ?? null, devices: reg.devices });
    });

  device
    .command("remove")
    .description("forget a board (nothing on the board is touched)")
    .argument("<name>")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action((name: string, f: { json?: boolean }, cmd: Command) => {
      const gone = removeDevice(name, registryOpts(cmd));
      emit(f, `removed ${gone.name} (${gone.uri})`, { removed: gone });
    });

  device
    .command("info")
    .description("connect and show what the board is: profile, arch, Node.js, memory, the agent install")
    .argument("[name]", "device name or URI (default: the default device)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (name: string | undefined, f: { json?: boolean }, cmd: Command) => {
      const entry = resolveDevice(name, registryOpts(cmd));
      const info = await withDevice(entry, async (t) => {
        const { client, hello } = await connectAgent(t);
        try {
          const det = detectBoard(hello.facts);
          const models = await client.list();
          return { device: entry.name, uri: entry.uri, hello, detection: det, current: models.current };
        } finally {
          await client.close();
        }
      });
      const fx = info.hello.facts;
      const lines = [
        `${entry.name} (${entry.uri})`,
        `  board     ${info.detection.profile.name} (${info.detection.profile.id})`,
        `  system    ${fx.platform}/${fx.arch}, ${fx.cpus} CPUs, ${(fx.memTotal / 2 ** 30).toFixed(1)} GiB, glibc ${fx.glibc ?? "?"}, kernel ${fx.kernel}`,
        `  node      ${fx.node}`,
        `  agent     ${info.hello.agentVersion} (protocol ${info.hello.protocol}), home ${info.hello.home}`,
        `  install   ${info.hello.installed?.key ?? "not set up"}${info.hello.installed ? `, ${info.hello.installed.backend}` : ""}`,
        `  current   ${info.current ?? "no model deployed"}`,
      ];
      emit(f, lines.join("\n"), {
        device: entry.name,
        uri: entry.uri,
        board: info.detection.profile.id,
        facts: fx,
        agent: { version: info.hello.agentVersion, protocol: info.hello.protocol, home: info.hello.home },
        installed: info.hello.installed,
        current: info.current,
      });
    });

  device
    .command("setup")
    .description("install the qat agent and its runtime on the board (idempotent)")
    .argument("[name]", "device name or URI (default: the default device)")
    .option("--force", "reinstall even when the same version is there", false)
    .addOption(
      new Option("--backend <runtime>", "runtime to install").choices([
        "onnxruntime-node",
        "onnxruntime-web",
      ]),
    )
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(
      async (
        name: string | undefined,
        f: { force?: boolean; backend?: "onnxruntime-node" | "onnxruntime-web"; json?: boolean },
        cmd: Command,
      ) => {
        const entry = resolveDevice(name, registryOpts(cmd));
        const r = await withDevice(entry, (t) =>
          setupDevice(t, {
            force: f.force,
            backend: f.backend,
            onProgress: (m) => process.stderr.write(`${m}\n`),
          }),
        );
        const human = r.changed
          ? `${entry.name}: installed ${r.key} (${r.installed.backend}, ${r.detection.profile.name}); sent ${r.filesSent} files (${(r.bytesSent / 2 ** 20).toFixed(1)} MiB), ${r.filesSkipped} already there`
          : `${entry.name}: ${r.key} is already installed (${r.installed.backend}); nothing to do`;
        emit(f, human, {
          device: entry.name,
          changed: r.changed,
          key: r.key,
          installed: r.installed,
          board: r.detection.profile.id,
          node: r.node,
          filesSent: r.filesSent,
          filesSkipped: r.filesSkipped,
          bytesSent: r.bytesSent,
          runtime: r.runtime,
        });
      },
    );

  device
    .command("models")
    .description("the models on the board: current, the deploy history, sizes")
    .argument("[name]", "device name or URI (default: the default device)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (name: string | undefined, f: { json?: boolean }, cmd: Command) => {
      const entry = resolveDevice(name, registryOpts(cmd));
      const l = await withDevice(entry, (t) => listModels(t));
      const lines = [`${entry.name}: ${l.models.length} model(s)`];
      for (const m of l.models) {
        const mark = m.sha256 === l.current ? "*" : " ";
        lines.push(`${mark} ${m.sha256.slice(0, 16)}  ${String(m.size).padStart(10)} B  ${m.name ?? ""}`);
      }
      emit(f, lines.join("\n"), {
        device: entry.name,
        current: l.current,
        history: l.history,
        models: l.models,
      });
    });

  device
    .command("ports")
    .description("the host's serial ports (works without udev: then from a scan of /dev)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (f: { json?: boolean }) => {
      const r = await listSerialPorts();
      const lines = r.ports.length
        ? r.ports.map(
            (p) =>
              `${p.path}${p.manufacturer ? `  ${p.manufacturer}` : ""}${p.serialNumber ? ` (${p.serialNumber})` : ""}`,
          )
        : ["no serial ports found"];
      if (r.note) lines.push(`note: ${r.note}`);
      emit(f, lines.join("\n"), r);
    });

  const emulator = device
    .command("emulator")
    .description(
      "the emulated boards (qemu-user): rpi4 (arm64 Raspberry Pi 4), x64-haswell (x86-64 without VNNI)",
    );
  emulator
    .command("setup")
    .description(
      "check the Debian packages, fetch the board's Node.js (npm pack) and prepare the emulated board",
    )
    .argument("[board]", `${EMULATED_BOARDS.join(" or ")}`, "rpi4")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (board: string, f: { json?: boolean }) => {
      if (!(EMULATED_BOARDS as readonly string[]).includes(board))
        throw new UsageError(`there is no emulated board '${board}'; choose ${EMULATED_BOARDS.join(" or ")}`);
      const spec = emulatedBoard(board);
      const missing = emulatorPrerequisites(board as EmulatedBoard);
      if (missing.length) {
        throw new RegistryError(
          "emulator-prerequisites",
          `cannot emulate a ${spec.title}: ${missing.join("; ")}`,
          {
            device: `emulated:${board}`,
            hint: `install with: apt-get install -y ${spec.packages.join(" ")}`,
          },
        );
      }
      const emu = await ensureEmulator({ board: board as EmulatedBoard });
      emit(
        f,
        `emulated ${spec.title} ready: ${emu.node} (${spec.arch} Node.js ${emu.arm64Node}, ${emu.qemu} -cpu ${spec.cpu})`,
        { ready: true, ...emu },
      );
    });

  return device;
}

/** Check a --device list: names or URIs; raises RegistryError (exit 2) for a bad one before anything connects. */
export function resolveDevices(list: string[], opts: { path?: string }): DeviceEntry[] {
  return list.map((n) => {
    const e = resolveDevice(n, opts);
    parseDeviceUri(e.uri);
    return e;
  });
}

export { listDevices };
