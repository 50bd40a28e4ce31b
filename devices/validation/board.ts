/** Validation on one board: the host's reference (computed here unless given), the board's run, the comparison. */
import { detectBoard } from "../boards.js";
import { connectAgent } from "../setup.js";
import type { Transport } from "../transport/channel.js";
import { runOnBoard } from "./board-run.js";
import { compare } from "./compare.js";
import { type HostReference, hostReference } from "./host-run.js";
import type { EvalSet, ValidateOptions } from "./options.js";
import type { DeviceReport } from "./report.js";
import { latencySource } from "./timing.js";

/** Validate a model on one board against the host. */
export async function validateModel(
  modelBytes: Uint8Array,
  set: EvalSet,
  t: Transport,
  opts: ValidateOptions = {},
  ref?: HostReference,
): Promise<DeviceReport> {
  const host = ref ?? (await hostReference(modelBytes, set, opts));
  const { client, hello } = await connectAgent(t);
  try {
    const board = await runOnBoard(client, host.prepared, set, opts);
    const report = compare(t.label, host.prepared, set, host.result, board, opts);
    const det = detectBoard(hello.facts);
    return { ...report, board: det.profile.id, arch: hello.facts.arch, latency: latencySource(t) };
  } finally {
    await client.close();
  }
}
