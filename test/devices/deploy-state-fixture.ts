import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupDevice } from "../../devices/setup.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { encodeModel, loadModel } from "../../src/onnx/codec.js";
import { MNIST8 } from "./helpers.js";

export const shaOf = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** mnist-8 with its own producer name: the same graph, other bytes, so another sha256. */
export function variant(tag: string): { bytes: Uint8Array; sha: string } {
  const m = loadModel(MNIST8);
  m.producerName = `qat-deploy-state-${tag}`;
  const bytes = encodeModel(m);
  return { bytes, sha: shaOf(bytes) };
}

/** A local board with the agent set up in a fresh home. */
export async function localBoard(prefix: string): Promise<{
  dir: string;
  home: string;
  t: LocalTransport;
  /** Another transport on the same home whose agents SIGKILL themselves at `step` (the agent's test hook). */
  crashing: (step: string) => LocalTransport;
}> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const home = join(dir, "agent-home");
  const t = new LocalTransport({ home });
  await setupDevice(t);
  return {
    dir,
    home,
    t,
    crashing: (step) => new LocalTransport({ home, env: { QAT_AGENT_CRASH_AT: step } }),
  };
}

/** True when models/<sha>/model.onnx is there and hashes to its name. */
export function complete(home: string, sha: string): boolean {
  const p = join(home, "models", sha, "model.onnx");
  return existsSync(p) && shaOf(readFileSync(p)) === sha;
}

export function stateOf(home: string): { current: string | null; history: string[] } {
  return JSON.parse(readFileSync(join(home, "state.json"), "utf8")) as {
    current: string | null;
    history: string[];
  };
}

export function linkOf(home: string): string | null {
  const p = join(home, "current");
  return existsSync(p) ? readlinkSync(p).split("/").pop()! : null;
}

/** Files a killed agent may leave in the home and models/ (temporary state files, half-pruned models). */
export function leftovers(home: string): string[] {
  return [
    ...readdirSync(home).filter((f) => f.endsWith(".tmp") || f === "lock" || f === "lock.break"),
    ...readdirSync(join(home, "models")).filter((f) => f.startsWith(".trash.")),
  ];
}
