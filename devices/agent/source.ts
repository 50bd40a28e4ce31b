/**
 * The agent as a board program: its modules, in the order setup writes them (agent.mjs, the entry, last), read
 * from the build or transpiled from the sources by the one board-program loader (program.ts).
 */
import { type BoardModule, type BoardProgram, boardProgram } from "./program.js";

/** The agent's modules and their names in the install folder. */
export const AGENT_MODULES: readonly BoardModule[] = [
  // the exclusive lock is shared with the host's run folders
  { source: "../src/util/file-lock", file: "file-lock.mjs" },
  ...[
    "protocol",
    "framing",
    "auth",
    "config",
    "tensors",
    "files",
    "facts",
    "install",
    "faults",
    "lock",
    "state",
    "store",
    "uploads",
    "trtexec",
    "runtime",
    "tensorrt",
    "evaluations",
    "dispatch",
    "serve",
    "agent",
  ].map((name) => ({ source: `agent/${name}`, file: `${name}.mjs` })),
];

/** The entry module's file on the board: `node agent.mjs --home …` starts the agent. */
export const AGENT_ENTRY = "agent.mjs";

export type AgentProgram = BoardProgram;

let cached: Promise<AgentProgram> | undefined;

/** The agent's files for a board (cached: the program does not change while qat runs). */
export function agentProgram(): Promise<AgentProgram> {
  cached ??= boardProgram(AGENT_MODULES).catch((e: unknown) => {
    cached = undefined;
    throw e;
  });
  return cached;
}
