/**
 * The host's copies of device secrets: one file per registered board, keys/<name>.key beside the registry file
 * (32 raw bytes, mode 0600, in a folder of mode 0700). `qat device setup` writes it before giving the same secret
 * to the board; every agent session then proves both ends hold it (agent/auth.ts). Kept out of devices.json, so
 * `qat device list --json` and the registry's other readers never see a secret.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../src/util/atomic.js";
import { SECRET_BYTES } from "./agent/auth.js";
import { RegistryError } from "./errors.js";

/** The key file of device `name` for the registry file at `registry`. */
export function secretPath(registry: string, name: string): string {
  // URI-named devices (emulated:rpi4, ssh://…) get a file name of safe characters
  return join(dirname(registry), "keys", `${name.replace(/[^A-Za-z0-9._-]/g, "_")}.key`);
}

/** The device's secret on this host, or undefined when it has none (never set up since authentication). */
export function readDeviceSecret(registry: string, name: string): Buffer | undefined {
  const p = secretPath(registry, name);
  if (!existsSync(p)) return undefined;
  const b = readFileSync(p);
  if (b.length !== SECRET_BYTES) {
    throw new RegistryError(
      "bad-secret",
      `${p} holds ${b.length} bytes, not a ${SECRET_BYTES}-byte device secret`,
      {
        device: name,
        hint: `delete it and run \`qat device setup ${name}\` again`,
      },
    );
  }
  return b;
}

/** Store the device's secret (mode 0600 in a 0700 folder: the temporary file is never readable by others). */
export function writeDeviceSecret(registry: string, name: string, secret: Uint8Array): void {
  const p = secretPath(registry, name);
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  chmodSync(dirname(p), 0o700);
  writeFileAtomic(p, secret);
  chmodSync(p, 0o600);
}

/** Give device `to` the secret of device `from` (the same board reached another way: ssh and its serial line). */
export function copyDeviceSecret(registry: string, from: string, to: string): void {
  if (!readDeviceSecret(registry, from)) {
    throw new RegistryError("no-device-secret", `device '${from}' has no secret on this host`, {
      hint: `run \`qat device setup ${from}\` first (over ssh or locally)`,
    });
  }
  const p = secretPath(registry, to);
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  copyFileSync(secretPath(registry, from), p);
  chmodSync(p, 0o600);
}

/** Forget the device's secret (the device was removed). */
export function removeDeviceSecret(registry: string, name: string): void {
  rmSync(secretPath(registry, name), { force: true });
}
