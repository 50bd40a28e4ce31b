/**
 * The human text of what the device commands report: the registry listing, a board's info, a setup, the models on
 * a board, the host's serial ports, an emulated board made ready, a deploy and a rollback. `qat device …` and
 * `qat deploy` print these; their JSON is the result objects themselves.
 */
import { basename } from "node:path";
import { BOARDS } from "./boards.js";
import type { ModelList } from "./client.js";
import type { DeployReport } from "./deploy-file.js";
import type { DeviceInfo, RegistryListing } from "./inspect.js";
import type { BoardSetup } from "./prepare-board.js";
import type { DeviceEntry } from "./registry.js";
import { type Emulator, emulatedBoard } from "./transport/emulator.js";
import type { SerialPortInfo } from "./transport/serial.js";

const MiB = 2 ** 20;
const short = (sha: string | null | undefined): string => sha?.slice(0, 16) ?? "none";

export function formatAdded(entry: DeviceEntry, registry: string): string {
  return `added ${entry.name} (${entry.uri}) to ${registry}`;
}

export function formatRemoved(entry: DeviceEntry): string {
  return `removed ${entry.name} (${entry.uri})`;
}

/** One line per device, the default marked with *; or where the registry is and what the default then is. */
export function formatRegistryListing(l: RegistryListing): string {
  if (!l.devices.length)
    return `no devices in ${l.registry}; the default is the emulated Raspberry Pi 4 (emulated:rpi4)`;
  return l.devices
    .map((d) => `${d.name === l.default ? "* " : "  "}${d.name.padEnd(16)} ${d.uri}`)
    .join("\n");
}

export function formatDeviceInfo(info: DeviceInfo): string {
  const fx = info.facts;
  return [
    `${info.device} (${info.uri})`,
    `  board     ${BOARDS[info.board].name} (${info.board})`,
    `  system    ${fx.platform}/${fx.arch}, ${fx.cpus} CPUs, ${(fx.memTotal / 2 ** 30).toFixed(1)} GiB, glibc ${fx.glibc ?? "?"}, kernel ${fx.kernel}`,
    `  node      ${fx.node}`,
    `  agent     ${info.agent.version} (protocol ${info.agent.protocol}), home ${info.agent.home}`,
    `  install   ${info.installed?.key ?? "not set up"}${info.installed ? `, ${info.installed.backend}` : ""}`,
    `  current   ${info.current ?? "no model deployed"}`,
  ].join("\n");
}

export function formatSetup(r: BoardSetup): string {
  return r.changed
    ? `${r.device}: installed ${r.key} (${r.installed.backend}, ${BOARDS[r.board].name}); sent ${r.filesSent} files (${(r.bytesSent / MiB).toFixed(1)} MiB), ${r.filesSkipped} already there`
    : `${r.device}: ${r.key} is already installed (${r.installed.backend}); nothing to do`;
}

/** The models on a board, the current one marked with *. */
export function formatDeviceModels(l: ModelList & { device: string }): string {
  const lines = [`${l.device}: ${l.models.length} model(s)`];
  for (const m of l.models) {
    const mark = m.sha256 === l.current ? "*" : " ";
    lines.push(`${mark} ${short(m.sha256)}  ${String(m.size).padStart(10)} B  ${m.name ?? ""}`);
  }
  return lines.join("\n");
}

export function formatSerialPorts(r: { ports: SerialPortInfo[]; note?: string }): string {
  const lines = r.ports.length
    ? r.ports.map(
        (p) =>
          `${p.path}${p.manufacturer ? `  ${p.manufacturer}` : ""}${p.serialNumber ? ` (${p.serialNumber})` : ""}`,
      )
    : ["no serial ports found"];
  if (r.note) lines.push(`note: ${r.note}`);
  return lines.join("\n");
}

export function formatEmulatorReady(emu: Emulator): string {
  const spec = emulatedBoard(emu.board);
  return `emulated ${spec.title} ready: ${emu.node} (${spec.arch} Node.js ${emu.arm64Node}, ${emu.qemu} -cpu ${spec.cpu})`;
}

/** The upload (or that the board had it), what became current, what was kept; the TensorRT engine. */
export function formatDeploy(r: DeployReport, modelPath: string): string {
  const lines = [
    `${r.device}: ${r.uploaded ? "uploaded" : "already had"} ${basename(modelPath)} (${short(r.sha256)}, ${r.bytes} B); ` +
      (r.previous === r.sha256 ? "already current" : `current (previous ${short(r.previous)})`) +
      `, keeping ${r.history.length}` +
      (r.removed.length ? `, removed ${r.removed.length}` : ""),
  ];
  const engine = r.tensorrt;
  if (engine) {
    lines.push(
      `${r.device}: TensorRT ${engine.version ?? "(version not printed)"} engine for batch ${engine.batch}: ${engine.engine} ` +
        `(${engine.cached ? "built before" : `built in ${(engine.buildMs / 1000).toFixed(1)} s`}; unverified on real Jetson hardware)`,
    );
  }
  return lines.join("\n");
}

export function formatRollback(r: { device: string; from: string | null; to: string }): string {
  return `${r.device}: rolled back from ${short(r.from)} to ${short(r.to)}`;
}
