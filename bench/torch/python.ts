import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The Python that has PyTorch (Debian's python3-torch lives under /usr/bin/python3). */
export const PYTHON = process.env.QAT_TORCH_PYTHON ?? "/usr/bin/python3";

/** Where the .py peers live (the source folder, also when this file runs compiled from dist/). */
export const TORCH_DIR = ((): string => {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${"/dist/"}`) ? here.replace(/\/dist\/bench\/torch$/, "/bench/torch") : here;
})();

/** Null when PyTorch can be imported, otherwise what is wrong and how to fix it. */
export function torchProblem(): string | null {
  const r = spawnSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  if (r.error) return `${PYTHON} cannot be run (${r.error.message}); install python3 and python3-torch`;
  if (r.status !== 0) {
    return `${PYTHON} cannot import torch: ${r.stderr.trim().split("\n").at(-1)}. Install it: apt-get install -y python3-torch libopenblas0-openmp`;
  }
  return null;
}

/** Run one of the peer scripts with arguments and optional stdin; throws with its stderr on failure. */
export function runTorchScript(script: string, args: string[], input?: string, timeoutMs = 600_000): string {
  const r = spawnSync(PYTHON, [join(TORCH_DIR, script), ...args], {
    encoding: "utf8",
    input,
    timeout: timeoutMs,
    maxBuffer: 1 << 26,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${script} failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
}
