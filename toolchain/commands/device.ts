import { Command, Option } from "commander";
import { copyDeviceSecret, readDeviceSecret } from "../../devices/device-secrets.js";
import {
  formatAdded,
  formatDeviceInfo,
  formatDeviceModels,
  formatEmulatorReady,
  formatRegistryListing,
  formatRemoved,
  formatSerialPorts,
  formatSetup,
} from "../../devices/device-text.js";
import { deviceInfo, deviceModels, registryListing } from "../../devices/inspect.js";
import { prepareEmulatedBoard, setupBoard } from "../../devices/prepare-board.js";
import { addDevice, type DeviceEntry, registryPath, removeDevice } from "../../devices/registry.js";
import { EMULATED_BOARDS } from "../../devices/transport/emulator.js";
import { listSerialPorts } from "../../devices/transport/serial.js";
import { seconds } from "../args.js";
import { registryFile } from "../device-flags.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";

const JSON_FLAG = ["--json", "print one JSON object as the last line of stdout"] as const;
const DEVICE_ARG = ["[name]", "device name or URI (default: the default device)"] as const;

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
  secretOf?: string;
  json?: boolean;
}

/** The registry entry the flags of `qat device add` describe. */
function entryOf(name: string, uri: string | undefined, f: AddFlags): DeviceEntry {
  if ((uri === undefined) === (f.emulated === undefined)) {
    throw new UsageError(
      "give either a URI or --emulated <board> (e.g. `qat device add pi-emu --emulated rpi4`)",
    );
  }
  const connectTimeoutMs = seconds(f.connectTimeout || undefined, "--connect-timeout");
  return {
    name,
    uri: uri ?? `emulated:${f.emulated}`,
    ...(f.key ? { key: f.key } : {}),
    ...(f.node ? { node: f.node } : {}),
    ...(f.home ? { home: f.home } : {}),
    ...(f.acceptNew ? { acceptNew: true } : {}),
    ...(f.knownHosts ? { knownHostsFile: f.knownHosts } : {}),
    ...(f.sshConfig ? { sshConfigFile: f.sshConfig } : {}),
    ...(connectTimeoutMs !== undefined ? { connectTimeoutMs } : {}),
  };
}

function addCommand(): Command {
  return new Command("add")
    .description(
      "register a board: ssh://user@host[:port], serial:///dev/ttyUSB0?baud=921600, local, emulated:rpi4|rpi5|orin|x64-haswell",
    )
    .argument("<name>", "a name for the board")
    .argument("[uri]", "where it is")
    .option(
      "--emulated <board>",
      "an emulated board instead of a URI: rpi4 (Raspberry Pi 4, arm64), rpi5 (Raspberry Pi 5, dot product), orin (Jetson Orin, L4T) or x64-haswell (x86-64 without VNNI)",
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
    .option(
      "--secret-of <device>",
      "share the device secret of another registered device (the same board over ssh and its serial line)",
    )
    .option(...JSON_FLAG, false)
    .action((name: string, uri: string | undefined, f: AddFlags, cmd: Command) => {
      const opts = { path: registryFile(cmd) };
      // refused before anything is added when the other device has no secret
      if (f.secretOf && !readDeviceSecret(registryPath(opts), f.secretOf)) {
        copyDeviceSecret(registryPath(opts), f.secretOf, name);
      }
      const stored = addDevice(entryOf(name, uri, f), {
        ...opts,
        replace: f.replace,
        makeDefault: f.default,
      });
      if (f.secretOf) copyDeviceSecret(registryPath(opts), f.secretOf, stored.name);
      emit(f, formatAdded(stored, registryPath(opts)), { device: stored, registry: registryPath(opts) });
    });
}

function listCommand(): Command {
  return new Command("list")
    .description("the registered boards (* marks the default)")
    .option(...JSON_FLAG, false)
    .action((f: { json?: boolean }, cmd: Command) => {
      const l = registryListing(registryFile(cmd));
      emit(f, formatRegistryListing(l), l);
    });
}

function removeCommand(): Command {
  return new Command("remove")
    .description("forget a board (nothing on the board is touched)")
    .argument("<name>")
    .option(...JSON_FLAG, false)
    .action((name: string, f: { json?: boolean }, cmd: Command) => {
      const gone = removeDevice(name, { path: registryFile(cmd) });
      emit(f, formatRemoved(gone), { removed: gone });
    });
}

function infoCommand(): Command {
  return new Command("info")
    .description("connect and show what the board is: profile, arch, Node.js, memory, the agent install")
    .argument(...DEVICE_ARG)
    .option(...JSON_FLAG, false)
    .action(async (name: string | undefined, f: { json?: boolean }, cmd: Command) => {
      const info = await deviceInfo({ device: name, registry: registryFile(cmd) });
      emit(f, formatDeviceInfo(info), info);
    });
}

type SetupFlags = {
  force?: boolean;
  backend?: "onnxruntime-node" | "onnxruntime-web";
  rekey?: boolean;
  trtexec?: string;
  json?: boolean;
};

function setupCommand(): Command {
  return new Command("setup")
    .description("install the qat agent and its runtime on the board (idempotent)")
    .argument(...DEVICE_ARG)
    .option("--force", "reinstall even when the same version is there", false)
    .option("--rekey", "make a new device secret (the old one stops working)", false)
    .option("--trtexec <path>", "where trtexec is on the board (kept in the agent's configuration)")
    .addOption(
      new Option("--backend <runtime>", "runtime to install").choices([
        "onnxruntime-node",
        "onnxruntime-web",
      ]),
    )
    .option(...JSON_FLAG, false)
    .action(async (name: string | undefined, f: SetupFlags, cmd: Command) => {
      const r = await setupBoard({
        device: name,
        registry: registryFile(cmd),
        force: f.force,
        backend: f.backend,
        rekey: f.rekey,
        trtexec: f.trtexec,
        onProgress: (m) => process.stderr.write(`${m}\n`),
      });
      emit(f, formatSetup(r), r);
    });
}

function modelsCommand(): Command {
  return new Command("models")
    .description("the models on the board: current, the deploy history, sizes")
    .argument(...DEVICE_ARG)
    .option(...JSON_FLAG, false)
    .action(async (name: string | undefined, f: { json?: boolean }, cmd: Command) => {
      const l = await deviceModels({ device: name, registry: registryFile(cmd) });
      emit(f, formatDeviceModels(l), l);
    });
}

function portsCommand(): Command {
  return new Command("ports")
    .description("the host's serial ports (works without udev: then from a scan of /dev)")
    .option(...JSON_FLAG, false)
    .action(async (f: { json?: boolean }) => {
      const r = await listSerialPorts();
      emit(f, formatSerialPorts(r), r);
    });
}

function emulatorCommand(): Command {
  const emulator = new Command("emulator").description(
    "the emulated boards (qemu-user): rpi4 (arm64 Raspberry Pi 4), rpi5 (Raspberry Pi 5), orin (Jetson Orin), x64-haswell (x86-64 without VNNI)",
  );
  emulator
    .command("setup")
    .description(
      "check the Debian packages, fetch the board's Node.js (npm pack) and prepare the emulated board",
    )
    .argument("[board]", `${EMULATED_BOARDS.join(" or ")}`, "rpi4")
    .option(...JSON_FLAG, false)
    .action(async (board: string, f: { json?: boolean }) => {
      const emu = await prepareEmulatedBoard(board);
      emit(f, formatEmulatorReady(emu), emu);
    });
  return emulator;
}

/** `qat device …`: the device registry, setup, the emulated board, models on a board, serial ports. */
export function deviceCommand(): Command {
  const device = new Command("device").description("boards: register, set up, inspect (devices.json)");
  for (const sub of [
    addCommand(),
    listCommand(),
    removeCommand(),
    infoCommand(),
    setupCommand(),
    modelsCommand(),
    portsCommand(),
    emulatorCommand(),
  ])
    device.addCommand(sub);
  return device;
}
