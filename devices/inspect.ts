/**
 * Looking at devices without changing them: what the registry holds (and which is the default), what a board is
 * (profile, system, agent install, current model), and which models it keeps. What `qat device list|info|models`
 * report; their text is in device-text.ts.
 */
import { type BoardId, detectBoard } from "./boards.js";
import type { Hello, InstalledInfo, ModelList } from "./client.js";
import { listModels } from "./deploy.js";
import { type DeviceEntry, readRegistry, registryPath, resolveDevice } from "./registry.js";
import { connectAgent } from "./setup.js";
import { type Emulation, emulationOf } from "./transport/emulator.js";
import { withDevice } from "./with-device.js";

/** A device by name or URI in a registry file (absent: the default device; the default registry). */
export interface DeviceTarget {
  device?: string;
  registry?: string;
}

export interface RegistryListing {
  /** The registry file. */
  registry: string;
  /** The default device: the one set, else the only one registered, else null. */
  default: string | null;
  devices: DeviceEntry[];
}

/** The registered devices and which one is the default. */
export function registryListing(registry?: string): RegistryListing {
  const opts = { path: registry };
  const reg = readRegistry(opts);
  const implicit = !reg.default && reg.devices.length === 1 ? reg.devices[0]!.name : undefined;
  return { registry: registryPath(opts), default: reg.default ?? implicit ?? null, devices: reg.devices };
}

export interface DeviceInfo {
  device: string;
  uri: string;
  /** The detected board profile, the facts that decided it, and what looked unlike that board. */
  board: BoardId;
  evidence: string[];
  warnings: string[];
  /** An emulated board: qemu and its CPU model (its timings are the emulator's, not the board's). */
  emulation?: Emulation;
  /** What the board said about itself (platform, arch, CPUs, memory, glibc, kernel, Node.js). */
  facts: Hello["facts"];
  agent: { version: string; protocol: number; home: string };
  installed: InstalledInfo | null;
  /** The sha256 of the current model, or null. */
  current: string | null;
}

/** Connect to the agent and say what the board is: profile, system facts, the agent install, the current model. */
export async function deviceInfo(opts: DeviceTarget = {}): Promise<DeviceInfo> {
  const entry = resolveDevice(opts.device, { path: opts.registry });
  return withDevice(entry, async (t) => {
    const { client, hello } = await connectAgent(t);
    try {
      const models = await client.list();
      const detection = detectBoard(hello.facts);
      const emulation = emulationOf(t);
      return {
        device: entry.name,
        uri: entry.uri,
        board: detection.profile.id,
        evidence: detection.evidence,
        warnings: detection.warnings,
        ...(emulation ? { emulation } : {}),
        facts: hello.facts,
        agent: { version: hello.agentVersion, protocol: hello.protocol, home: hello.home },
        installed: hello.installed,
        current: models.current,
      };
    } finally {
      await client.close();
    }
  });
}

/** The models a board keeps: current, the deploy history, each model's size and name. */
export async function deviceModels(opts: DeviceTarget = {}): Promise<ModelList & { device: string }> {
  const entry = resolveDevice(opts.device, { path: opts.registry });
  const l = await withDevice(entry, (t) => listModels(t));
  return { device: entry.name, current: l.current, history: l.history, models: l.models };
}
