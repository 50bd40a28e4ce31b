/**
 * Probing a board's Node.js over a plain command, before any agent is there: its version, arch, glibc and the
 * agent install it already has.
 */

import type { InstalledInfo } from "./agent/protocol.js";
import { detectBoard, factsOverShell } from "./boards.js";
import { NodeError } from "./errors.js";
import type { Transport } from "./transport/channel.js";

/** Lowest Node.js major the agent runs on. */
export const MIN_NODE_MAJOR = 18;

/** A short JS program run with `node -e` on the board. Paths arrive as arguments, never inside the code. */
const PROBE_JS = `
const fs = require("fs"), path = require("path");
let installed = null;
try { installed = JSON.parse(fs.readFileSync(path.join(process.argv[1], "installed.json"), "utf8")); } catch {}
const r = process.report && process.report.getReport();
process.stdout.write(JSON.stringify({ node: process.version, arch: process.arch, platform: process.platform,
  glibc: (r && r.header && r.header.glibcVersionRuntime) || null, installed }));
`;

export interface Probe {
  node: string;
  arch: string;
  platform: string;
  glibc: string | null;
  installed: InstalledInfo | null;
}

/** Ask the board's Node for its version, arch, glibc and the installed agent. Raises NodeError when it cannot. */
export async function probeNode(t: Transport): Promise<Probe> {
  const r = await t.exec([...t.node, "-e", PROBE_JS, t.home], { timeoutMs: 120_000 });
  const err = r.stderr.toString("utf8").trim();
  if (r.code === 127 || (r.code !== 0 && /not found|No such file/.test(err))) {
    let what = "";
    if (t.kind === "ssh") {
      try {
        const f = detectBoard(await factsOverShell(t));
        what = ` (the board looks like a ${f.profile.name}${f.glibc ? `, glibc ${f.glibc}` : ""})`;
      } catch {
        what = "";
      }
    }
    throw new NodeError("node-missing", `Node.js is not found on the board as '${t.node.join(" ")}'${what}`, {
      device: t.label,
      hint: `install Node.js ≥ ${MIN_NODE_MAJOR} there (e.g. from nodejs.org or NodeSource), or give its path with the device's node setting`,
    });
  }
  if (r.code !== 0) {
    throw new NodeError(
      "node-failed",
      `'${t.node.join(" ")} -e …' failed with code ${r.code}: ${err.split("\n").slice(-3).join(" | ")}`,
      {
        device: t.label,
        hint: "check that Node.js runs on the board",
      },
    );
  }
  let p: Probe;
  try {
    p = JSON.parse(r.stdout.toString("utf8").slice(r.stdout.indexOf("{"))) as Probe;
  } catch {
    throw new NodeError(
      "node-failed",
      `the board's Node.js printed something unexpected: ${r.stdout.toString("utf8").slice(0, 200)}`,
      {
        device: t.label,
      },
    );
  }
  const major = Number(/^v(\d+)/.exec(p.node)?.[1] ?? 0);
  if (major < MIN_NODE_MAJOR) {
    throw new NodeError("node-too-old", `Node.js ${p.node} on the board is older than ${MIN_NODE_MAJOR}`, {
      device: t.label,
      hint: `install Node.js ≥ ${MIN_NODE_MAJOR} (the agent uses APIs of Node 18)`,
    });
  }
  if (p.platform !== "linux") {
    throw new NodeError("unsupported-os", `the board runs ${p.platform}; qat boards run Linux`, {
      device: t.label,
    });
  }
  return p;
}
