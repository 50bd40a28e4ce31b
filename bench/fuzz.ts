/**
 * Fuzz the ONNX decoder with mutated real models: every case must decode or raise one OnnxError, never crash, hang
 * or allocate without bound.
 *
 *   npm run build && node dist/bench/fuzz.js [--cases N] [--seed S] [--models DIR]
 *
 * Defaults: 10,000 cases, seed 1, the models in ../shared/models. Cases run in a child process that reports each
 * case before running it, so a process-level failure (abort, out of memory, stack overflow) or a hang (no progress
 * for 10 s) is counted as a crash and the run resumes at the next case. Case i depends only on (seed, i).
 * Prints: cases tried, decoded fine, typed errors, crashes, the slowest case in ms, and the peak RSS.
 */
import { fork } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { makeCase } from "./fuzz/cases.js";
import { loadModels, SHARED_MODELS } from "./fuzz/models.js";
import { emptyReport, type FuzzReport, merge, record, runFuzz } from "./fuzz/run.js";

export { type FuzzCase, KINDS, makeCase } from "./fuzz/cases.js";
export { type FuzzModel, loadModels, SHARED_MODELS } from "./fuzz/models.js";
export { prng } from "./fuzz/random.js";
export { type Crash, type FuzzReport, type Outcome, type RunOptions, runCase, runFuzz } from "./fuzz/run.js";

/** A child that reports no progress for this long is killed and its current case counted as a hang. */
const HANG_MS = 10_000;

/** Run cases [first, first+cases) in child processes, restarting after a process-level failure or a hang. */
async function supervise(cases: number, seed: number, dir: string): Promise<FuzzReport> {
  const total = emptyReport();
  const models = loadModels(dir);
  let next = 0;
  while (next < cases) {
    const from = next;
    let current = from;
    const result = await new Promise<FuzzReport | string>((done) => {
      const child = fork(
        fileURLToPath(import.meta.url),
        ["--child", String(from), String(cases - from), String(seed), dir],
        {
          stdio: ["ignore", "inherit", "pipe", "ipc"],
        },
      );
      let stderr = "";
      child.stderr?.on("data", (d) => {
        stderr = (stderr + d).slice(-2000);
      });
      let timer = setTimeout(hang, HANG_MS);
      function hang() {
        child.kill("SIGKILL");
        done(`hang: no progress for ${HANG_MS} ms`);
      }
      child.on("message", (m: { at?: number; report?: FuzzReport }) => {
        if (m.at !== undefined) {
          current = m.at;
          clearTimeout(timer);
          timer = setTimeout(hang, HANG_MS);
        } else if (m.report) {
          clearTimeout(timer);
          done(m.report);
        }
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        done(
          `process exited (code ${code}, signal ${signal}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
        );
      });
    });
    if (typeof result === "string") {
      // cases before `current` finished in the dead child but their tallies died with it: rerun them in-process
      if (current > from) merge(total, runFuzz({ cases: current - from, seed, first: from, models }));
      const c = makeCase(models, seed, current);
      record(total, c, { crash: result }, 0);
      next = current + 1;
    } else {
      merge(total, result);
      next = cases;
    }
  }
  total.peakRssMb = Math.max(total.peakRssMb, process.resourceUsage().maxRSS / 1024);
  return total;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  if (process.argv[2] === "--child") {
    const [first, cases, seed, dir] = process.argv.slice(3).map((v, i) => (i < 3 ? Number(v) : v)) as [
      number,
      number,
      number,
      string,
    ];
    const report = runFuzz({
      first,
      cases,
      seed,
      models: loadModels(dir),
      before: (at) => process.send?.({ at }),
    });
    process.send?.({ report }, () => process.exit(0));
    return;
  }
  const cases = Number(arg("--cases", "10000"));
  const seed = Number(arg("--seed", "1"));
  const dir = resolve(arg("--models", SHARED_MODELS));
  if (!Number.isInteger(cases) || cases < 1 || !Number.isInteger(seed)) {
    console.error("usage: node dist/bench/fuzz.js [--cases N] [--seed S] [--models DIR]");
    process.exit(2);
  }
  const t0 = performance.now();
  const r = await supervise(cases, seed, dir);
  const secs = (performance.now() - t0) / 1000;
  console.log(`fuzz: seed ${seed}, ${loadModels(dir).length} models from ${dir}`);
  console.log(`cases tried     ${r.cases}`);
  console.log(`decoded fine    ${r.decoded}`);
  console.log(`typed errors    ${r.typedErrors}`);
  console.log(`crashes         ${r.crashes.length}`);
  console.log(
    `slowest case    ${r.slowestMs.toFixed(1)} ms wall, ${r.slowestCpuMs.toFixed(1)} ms CPU (${r.slowestCase})`,
  );
  console.log(`peak RSS        ${r.peakRssMb.toFixed(0)} MB`);
  console.log(`wall time       ${secs.toFixed(1)} s`);
  console.log("by kind         cases / decoded / typed / crashes");
  for (const [k, v] of Object.entries(r.byKind).sort()) {
    console.log(
      `  ${k.padEnd(15)}${[v.cases, v.decoded, v.typed, v.crashes].map((x) => String(x).padStart(7)).join("")}`,
    );
  }
  for (const c of r.crashes.slice(0, 10))
    console.log(`crash #${c.index} ${c.kind} on ${c.model}: ${c.error}`);
  process.exitCode = r.crashes.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
