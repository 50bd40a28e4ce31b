import { spawnSync } from "node:child_process";
import { DeviceError } from "./errors.js";

/** Debian packages (of `wanted`) that dpkg does not report as installed. */
export function missingDebianPackages(wanted: readonly string[]): string[] {
  return wanted.filter((p) => spawnSync("dpkg", ["-s", p], { stdio: "ignore" }).status !== 0);
}

/**
 * Install missing Debian packages with apt-get (as root; no shell, package names passed as arguments). Returns what
 * was installed. Without root or apt-get it throws, saying which command to run.
 */
export function installDebianPackages(
  wanted: readonly string[],
  say: (s: string) => void = () => {},
): string[] {
  const missing = missingDebianPackages(wanted);
  if (missing.length === 0) return [];
  const command = `apt-get install -y ${missing.join(" ")}`;
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!root || spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status !== 0) {
    throw new DeviceError("packages-missing", `missing Debian packages: ${missing.join(", ")}`, {
      hint: `install them as root: ${command}`,
    });
  }
  say(`installing ${missing.join(", ")} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [
    ["update", "-qq"],
    ["install", "-y", "-qq", "--no-install-recommends", ...missing],
  ]) {
    const r = spawnSync("apt-get", args, { env, encoding: "utf8" });
    if (r.status !== 0) {
      throw new DeviceError(
        "packages-failed",
        `apt-get ${args[0]} failed: ${(r.stderr || r.stdout).trim().slice(-500)}`,
        {
          hint: `run it yourself: ${command}`,
        },
      );
    }
  }
  return missing;
}
