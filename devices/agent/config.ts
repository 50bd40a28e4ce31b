/**
 * The agent's configuration on the board (agent.json in its home, mode 0600), written by `qat device setup`
 * over a channel the owner controls (ssh, or the board's own shell) — never from the agent protocol, so nothing on
 * the wire chooses a program for the agent to run.
 *
 *   { "trtexec": "/usr/src/tensorrt/bin/trtexec" }   where trtexec is (absent: JetPack's default path, else PATH)
 *
 * Board-side code: Node built-ins only; installed beside the agent as config.mjs.
 */
import { join } from "node:path";
import { readText } from "./files.js";

export const CONFIG_FILE = "agent.json";

export interface AgentConfig {
  trtexec?: string;
}

/** The configuration in `home` (empty when there is none, or when it is not a JSON object). */
export function readAgentConfig(home: string): AgentConfig {
  const t = readText(join(home, CONFIG_FILE));
  if (!t) return {};
  try {
    const c = JSON.parse(t) as unknown;
    if (typeof c !== "object" || c === null) return {};
    const trtexec = (c as AgentConfig).trtexec;
    return typeof trtexec === "string" && trtexec ? { trtexec } : {};
  } catch {
    return {};
  }
}
