/**
 * Honest timing: whether a board's latency was measured on the board or under an emulator on the host, and the words
 * that say so in the drift table, the per-board text and the JSON.
 */
import type { Transport } from "../transport/channel.js";
import { emulationOf } from "../transport/emulator.js";
import type { LatencySource } from "./report.js";

/** Where this transport's timings come from: the board itself, or qemu on the host. */
export function latencySource(t: Transport): LatencySource {
  const e = emulationOf(t);
  if (!e) return { emulated: false };
  return {
    emulated: true,
    emulator: e.emulator,
    cpu: e.cpu,
    realCpu: e.realCpu,
    hostCpu: e.hostCpu,
    note:
      `emulated: ${e.emulator} -cpu ${e.cpu}${e.cpu.toLowerCase() === e.realCpu.toLowerCase() ? "" : ` (standing in for a ${e.realCpu})`} ` +
      `on the host's ${e.hostCpu} — the emulator's speed, not a real ${e.title}'s`,
  };
}

/** The fleet table's "timing" cell: "board", "EMULATED" (qemu on the host), "-" (a report from before this field). */
export function timingCell(l: LatencySource | undefined): string {
  if (!l) return "-";
  return l.emulated ? "EMULATED" : "board";
}
