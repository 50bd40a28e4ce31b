/**
 * The qat board agent's program (installed as agent.mjs with its modules beside it; they import only Node
 * built-ins, and onnxruntime-node is loaded from the install's node_modules when a model is evaluated). It speaks
 * the agent protocol (protocol.ts) in frames (framing.ts) over stdin/stdout, so the same program serves an SSH
 * exec channel and a local child process; with --serial it serves hosts on a tty through the serial link layer.
 * Every session starts with the handshake of auth.ts over the device secret in the home (auth.key); on a tty the
 * link layer also authenticates every frame with it.
 *
 *   agent.mjs [--home DIR]                      serve one host on stdin/stdout (default home ~/.qat-agent)
 *   agent.mjs --facts                           print the board's facts as JSON
 *   agent.mjs --serial TTY [--baud N]           serve hosts on a tty, one session after another
 *   agent.mjs --version
 *
 * `main()` runs only when this file is the program.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { readSecret } from "./auth.js";
import { collectFacts } from "./facts.js";
import { AGENT_VERSION, PROTOCOL_VERSION } from "./protocol.js";
import { serve } from "./serve.js";

interface Args {
  home: string;
  facts: boolean;
  serial?: string;
  baud: number;
}

function parseArgs(argv: string[]): Args {
  let home = join(os.homedir(), ".qat-agent");
  let facts = false;
  let serial: string | undefined;
  let baud = 115200;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--home" && argv[i + 1] !== undefined) home = argv[++i]!;
    else if (argv[i] === "--facts") facts = true;
    else if (argv[i] === "--serial" && argv[i + 1] !== undefined) serial = argv[++i]!;
    else if (argv[i] === "--baud" && /^\d+$/.test(argv[i + 1] ?? "")) baud = Number(argv[++i]);
    else if (argv[i] === "--version") {
      process.stdout.write(`${AGENT_VERSION} protocol ${PROTOCOL_VERSION}\n`);
      process.exit(0);
    } else {
      process.stderr.write(
        `qat-agent: unknown argument '${argv[i]}' (usage: agent.mjs [--home DIR] [--facts] [--serial TTY [--baud N]])\n`,
      );
      process.exit(2);
    }
  }
  return { home, facts, serial, baud };
}

/**
 * Serve hosts on a tty (a UART, a USB serial gadget) through the serial link layer: serial-tty.mjs beside this
 * file (an install), else the build's devices/serial/tty.js; @serialport/bindings-cpp from the install's
 * node_modules. Runs until the tty fails (systemd restarts the agent).
 */
async function serveSerial(home: string, path: string, baud: number): Promise<void> {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, "serial-tty.mjs"), join(here, "..", "serial", "tty.js")];
  const file = candidates.find((c) => fs.existsSync(c));
  if (!file) throw new Error(`the serial link module is missing (looked for ${candidates.join(", ")})`);
  const link = (await import(pathToFileURL(file).href)) as typeof import("../serial/tty.js");
  for (const sig of ["SIGHUP", "SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
  const log = (m: string): void => {
    process.stderr.write(`qat-agent: ${m}\n`);
  };
  await link.serveTty({
    path,
    baud,
    require: createRequire(join(here, "agent.mjs")),
    secret: () => readSecret(home),
    serve: (input, output) => serve(home, input, output, { standalone: false, log }),
    log,
  });
}

export async function main(argv: string[]): Promise<void> {
  const { home, facts, serial, baud } = parseArgs(argv);
  if (facts) {
    process.stdout.write(`${JSON.stringify(collectFacts())}\n`);
    return;
  }
  if (serial) {
    console.log = console.error;
    await serveSerial(home, serial, baud);
    process.exit(0);
  }
  // stdout carries frames only: anything a library prints goes to stderr
  console.log = console.error;
  console.info = console.error;
  console.warn = console.error;
  await serve(home, process.stdin, process.stdout);
  process.stdout.end(() => process.exit(0));
}

const self = fileURLToPath(import.meta.url);
let invoked = "";
try {
  invoked = process.argv[1] ? fs.realpathSync(process.argv[1]) : "";
} catch {
  invoked = "";
}
if (invoked && invoked === fs.realpathSync(self)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`qat-agent: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
