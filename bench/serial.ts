/**
 * Serial link throughput on a clean line, as a share of the line rate (goal ≥ 90%).
 *
 * How it is measured: host ⇄ socat pty pair ⇄ line simulator ⇄ socat pty pair ⇄ the qat agent (native, listening
 * on its tty). A pty moves bytes as fast as the CPU allows and ignores the baud rate, so the simulator paces both
 * directions at the line rate — baud / 10 bytes a second (8N1: start bit, 8 data bits, stop bit) — and stops
 * reading when 4 KiB are queued, so the writer waits as on a real UART. The figure is an upload through the agent
 * protocol (`client.put`: put.begin … 4 KiB put.chunk frames … put.end with the board's sha256 check), from the
 * first request to the board's reply: stream bytes of the file ÷ elapsed time ÷ (baud / 10).
 *
 *   npm run build && node dist/bench/serial.js [--baud 115200,921600] [--bytes N]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDevice } from "../devices/registry.js";
import { LineSimulator } from "../devices/serial/line-sim.js";
import { agentPath, connectAgent, setupDevice } from "../devices/setup.js";
import { LocalTransport } from "../devices/transport/local.js";
import type { SerialTransport } from "../devices/transport/serial.js";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function main(): Promise<void> {
  const bauds = arg("--baud", "115200,921600").split(",").map(Number);
  const dir = mkdtempSync(join(tmpdir(), "qat-bench-serial-"));
  const children: ChildProcess[] = [];
  const cleanup: (() => Promise<void>)[] = [];
  try {
    const home = join(dir, "home");
    const local = new LocalTransport({ home });
    const setup = await setupDevice(local);
    console.log(
      `serial link throughput, clean line, paced at the line rate (10 bits a byte); Node ${process.version}`,
    );
    console.log(
      "baud     bytes     seconds  payload B/s  line B/s  share   wire bytes sent/file bytes  frames  retx",
    );
    for (const baud of bauds) {
      const bytes = Number(arg("--bytes", String(Math.round((baud / 10) * 4)))); // ~4 s of line time
      const pty = (n: string): [string, string] => {
        const a = join(dir, `${baud}-${n}-a`);
        const b = join(dir, `${baud}-${n}-b`);
        children.push(
          spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
            stdio: "ignore",
          }),
        );
        return [a, b];
      };
      const [hostA, hostB] = pty("host");
      const [boardA, boardB] = pty("board");
      await waitFor(() => [hostA, hostB, boardA, boardB].every(existsSync), "socat");
      const sim = await LineSimulator.open(hostB, boardA, { baud });
      cleanup.push(() => sim.close());
      const agent = spawn(
        process.execPath,
        [agentPath(local, setup.key), "--home", home, "--serial", boardB, "--baud", String(baud)],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      children.push(agent);
      let log = "";
      agent.stderr!.on("data", (d: Buffer) => {
        log += d.toString();
      });
      await waitFor(() => /listening on/.test(log), "the agent");
      const t = (await openDevice({
        name: "bench",
        uri: `serial://${hostA}?baud=${baud}`,
      })) as SerialTransport;
      const { client } = await connectAgent(t);
      const data = randomBytes(bytes);
      const wire0 = t.stats.wireBytesSent;
      const frames0 = t.stats.framesSent;
      const t0 = performance.now();
      await client.put(data, { kind: "model", name: "bench" });
      const s = (performance.now() - t0) / 1000;
      const rate = bytes / s;
      const line = baud / 10;
      console.log(
        `${String(baud).padEnd(8)} ${String(bytes).padEnd(9)} ${s.toFixed(2).padEnd(8)} ${rate.toFixed(0).padEnd(12)} ` +
          `${String(line).padEnd(9)} ${((100 * rate) / line).toFixed(1).padEnd(5)}%  ` +
          `${((t.stats.wireBytesSent - wire0) / bytes).toFixed(4).padEnd(27)} ${String(t.stats.framesSent - frames0).padEnd(7)} ${t.stats.retransmissions}`,
      );
      await client.close();
      await t.close();
    }
  } finally {
    for (const c of cleanup) await c().catch(() => {});
    for (const c of children) c.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
