/**
 * TEST HOOK ONLY: crash points for the kill -9 tests of deploys (test/devices/deploy-state.test.ts). When the agent
 * was started with QAT_AGENT_CRASH_AT=<step> in its environment, it kills itself with SIGKILL — no cleanup, as a
 * power cut or the OOM killer would — on reaching that step:
 *   after-upload          a model's bytes were verified and renamed into models/<sha256>/
 *   before-state-write    the model was checked by the runtime, state.json not yet written
 *   after-state-write     state.json names the new current; the `current` link and pruning not done yet
 *   during-prune          the first old model was moved out of models/, the others not yet
 * The variable is read once, when the agent starts: nothing on the wire can set or change it.
 *
 * Board-side code: Node built-ins only; installed beside the agent as faults.mjs.
 */

export const CRASH_STEPS = [
  "after-upload",
  "before-state-write",
  "after-state-write",
  "during-prune",
] as const;
export type CrashStep = (typeof CRASH_STEPS)[number];

const armed = process.env.QAT_AGENT_CRASH_AT ?? "";

/** Die here, at once, when the agent was started to crash at `step` (tests only; a no-op otherwise). */
export function crashPoint(step: CrashStep): void {
  if (armed === step) process.kill(process.pid, "SIGKILL");
}
