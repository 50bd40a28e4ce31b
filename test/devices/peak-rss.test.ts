/**
 * The agent's peak memory is its own (VmHWM), not the high-water mark getrusage's maxrss carries over from the
 * process that spawned it: a board agent started by a big host process must not report the host's memory.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { ROOT } from "../helpers/paths.js";

const MB = 1 << 20;

test("a child started by a 400 MB process reports its own peak, not the parent's", () => {
  const runtime = join(ROOT, "dist", "devices", "agent", "runtime.js");
  if (!existsSync(runtime)) execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: ROOT });
  // the parent: a Node process that touches 400 MB, then runs the child with exec (no copy of the memory)
  const child = `import(${JSON.stringify(runtime)}).then((m) => console.log(JSON.stringify({ own: m.peakRss(), rusage: process.resourceUsage().maxRSS * 1024 })))`;
  const parent = `const b = Buffer.alloc(${400 * MB}, 1); require("node:child_process").execFileSync(process.execPath, ["-e", ${JSON.stringify(child)}], { stdio: "inherit" }); b[0];`;
  const out = JSON.parse(execFileSync(process.execPath, ["-e", parent], { encoding: "utf8" }).trim()) as {
    own: number;
    rusage: number;
  };
  expect(out.rusage).toBeGreaterThan(400 * MB); // what the agent used to report
  expect(out.own).toBeLessThan(200 * MB);
  expect(out.own).toBeGreaterThan(10 * MB);
});
