/**
 * Getting a board ready: install the qat agent and its runtime on a registered board (idempotent), and prepare an
 * emulated board on this host (its Debian packages checked, its Node.js fetched). What `qat device setup` and
 * `qat device emulator setup` do; their text is in device-text.ts.
 */

import { newSecret } from "./agent/auth.js";
import type { Backend, BoardId } from "./boards.js";
import type { InstalledInfo } from "./client.js";
import { readDeviceSecret, writeDeviceSecret } from "./device-secrets.js";
import { DeviceError, RegistryError } from "./errors.js";
import { registryOf, resolveDevice } from "./registry.js";
import { setupDevice } from "./setup.js";
import {
  EMULATED_BOARDS,
  type EmulatedBoard,
  type Emulator,
  emulatedBoard,
  emulatorPrerequisites,
  ensureEmulator,
} from "./transport/emulator.js";
import { withDevice } from "./with-device.js";

export interface SetupBoardOptions {
  /** Device name or URI (absent: the default device). */
  device?: string;
  /** The device registry file. */
  registry?: string;
  /** Reinstall even when the same version is there. */
  force?: boolean;
  /** The runtime to install instead of the one detection picks. */
  backend?: Backend;
  onProgress?: (message: string) => void;
  /** A new device secret for the board (re-key), even when this host has one. */
  rekey?: boolean;
  /** trtexec's absolute path on the board, kept in the agent's configuration. */
  trtexec?: string;
}

/** What a setup did (the JSON of `qat device setup`). */
export interface BoardSetup {
  device: string;
  /** False when the same version was already installed. */
  changed: boolean;
  key: string;
  installed: InstalledInfo;
  board: BoardId;
  node: string;
  filesSent: number;
  filesSkipped: number;
  bytesSent: number;
  runtime: Record<string, string>;
  /** The device secret: made by this setup (first setup since authentication, or a re-key), or the one kept. */
  secret: "created" | "kept";
}

/**
 * Install (or confirm) the agent and its runtime on a registered board, and give the board and this host the
 * same device secret. A new secret is stored on this host first: a setup cut short is simply run again.
 */
export async function setupBoard(opts: SetupBoardOptions = {}): Promise<BoardSetup> {
  const entry = resolveDevice(opts.device, { path: opts.registry });
  const registry = registryOf(entry);
  let created = false;
  const r = await withDevice(entry, (t) => {
    if (t.kind !== "serial" && (opts.rekey || !readDeviceSecret(registry, entry.name))) {
      const secret = newSecret();
      writeDeviceSecret(registry, entry.name, secret);
      t.secret = secret;
      created = true;
    }
    const { force, backend, onProgress, trtexec } = opts;
    return setupDevice(t, { force, backend, onProgress, trtexec, rekey: t.kind === "serial" && opts.rekey });
  });
  return {
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
    secret: created ? "created" : "kept",
  };
}

/**
 * Prepare an emulated board: refuse an unknown board (exit 2) or a host without the packages it needs (naming the
 * apt-get line), then fetch its Node.js and write its folder.
 */
export async function prepareEmulatedBoard(board: string): Promise<{ ready: true } & Emulator> {
  if (!(EMULATED_BOARDS as readonly string[]).includes(board)) {
    throw new DeviceError(
      "bad-option",
      `there is no emulated board '${board}'; choose one of ${EMULATED_BOARDS.join(", ")}`,
      { exitCode: 2 },
    );
  }
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
  return { ready: true, ...(await ensureEmulator({ board: board as EmulatedBoard })) };
}
