/**
 * Flags the device commands share (`qat device …`, `qat deploy`, `qat validate`): the registry file given with the
 * global --devices, and the boards named with --device / --all.
 */
import type { Command } from "commander";
import { parseList } from "./args.js";
import { UsageError } from "./errors.js";

/** The registry file given with the global --devices (undefined: $QAT_DEVICES, or the default). */
export function registryFile(cmd: Command): string | undefined {
  const g = cmd.optsWithGlobals() as { devices?: string };
  return g.devices || undefined;
}

/**
 * The boards --device (names or URIs, comma-separated) and --all name: a list, "all", or undefined for the default
 * device.
 */
export function deviceSelection(
  device: string | undefined,
  all: boolean | undefined,
): string[] | "all" | undefined {
  if (all && device !== undefined) throw new UsageError("give --device or --all, not both");
  if (all) return "all";
  if (device === undefined) return undefined;
  const names = parseList(device, "--device");
  if (!names.length) throw new UsageError("--device: give device names or URIs, comma-separated");
  return names;
}

/** Flags that only apply to --runtime tensorrt were given with another runtime. */
export function tensorRtOnly(runtime: string, given: Record<string, boolean>): void {
  const wrong = Object.entries(given)
    .filter(([, on]) => on)
    .map(([flag]) => flag);
  if (runtime !== "tensorrt" && wrong.length)
    throw new UsageError(`${Object.keys(given).join(" and ")} apply to --runtime tensorrt`);
}
