/**
 * Board facts: what the board is (architecture, Node, glibc, memory, CPU, device-tree model, JetPack release),
 * read from Node and /proc, /sys, /etc — the host detects the board profile from them.
 *
 * Board-side code: Node built-ins only; installed beside the agent as facts.mjs.
 */
import * as os from "node:os";
import { readText } from "./files.js";
import type { BoardFacts } from "./protocol.js";

export function collectFacts(): BoardFacts {
  const report = process.report?.getReport() as unknown as
    | { header?: { glibcVersionRuntime?: string } }
    | undefined;
  return {
    platform: process.platform,
    arch: process.arch,
    machine: typeof os.machine === "function" ? os.machine() : process.arch,
    node: process.version,
    glibc: report?.header?.glibcVersionRuntime ?? null,
    memTotal: os.totalmem(),
    cpus: os.cpus().length,
    cpuinfo: readText("/proc/cpuinfo"),
    deviceTreeModel:
      (readText("/proc/device-tree/model") ?? readText("/sys/firmware/devicetree/base/model"))?.replace(
        /\0+$/,
        "",
      ) ?? null,
    nvTegraRelease: readText("/etc/nv_tegra_release"),
    hostname: os.hostname(),
    kernel: os.release(),
  };
}
