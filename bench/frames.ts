/**
 * Frame reassembly and one validate-size batch through a local agent.
 *
 * 1. Decode: one frame of 4, 16 and 19 MiB pushed into a FrameDecoder in 64 KiB chunks (what a pipe or an SSH
 *    channel delivers), best of 3 runs (each 1 s of decoding at most, a quadratic decoder is cut short and reported
 *    as a lower bound).
 * 2. Round trip: a batch of 32×3×224×224 float32 (19 MiB) through `AgentClient.runBatch` to the agent on this
 *    machine (LocalTransport: a child process over pipes) and back, with a model that averages each image to 3
 *    numbers (GlobalAveragePool), so the time is the frames' and not the model's. Median of 5 after one warm-up,
 *    and the board's own run time beside it.
 *
 * Uses only APIs the tree had before the linear decoder, so the same file measures the old code: copy it into an
 * export of the old tree (`git archive <rev> | tar -x -C /tmp/old`), build there, and run it from there.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/frames.js [--sizes 4,16,19] [--runs 5]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrame, FrameDecoder } from "../devices/agent/framing.js";
import { connectAgent, setupDevice } from "../devices/setup.js";
import { LocalTransport } from "../devices/transport/local.js";
import { encodeModel, modelOf } from "../src/onnx/codec.js";
import { Graph } from "../src/onnx/ir.js";

const MiB = 1 << 20;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

/** Milliseconds to decode `frame` in chunks of `chunk`, or a lower bound if it passed `budgetMs`. */
function decodeMs(frame: Buffer, chunk: number, budgetMs: number): { ms: number; finished: boolean } {
  const d = new FrameDecoder();
  const t0 = performance.now();
  let got = 0;
  for (let i = 0; i < frame.length; i += chunk) {
    got += d.push(frame.subarray(i, i + chunk)).length;
    if (performance.now() - t0 > budgetMs && got === 0)
      return { ms: performance.now() - t0, finished: false };
  }
  if (got !== 1) throw new Error(`decoded ${got} frames, expected 1`);
  return { ms: performance.now() - t0, finished: true };
}

/** x[batch,3,224,224] → GlobalAveragePool → Flatten → y[batch,3]. */
function averagingModel(): Uint8Array {
  const g = new Graph();
  g.inputs.push({ name: "x", dtype: "float32", shape: ["batch", 3, 224, 224] });
  const p = g.op("GlobalAveragePool", ["x"], {}, { name: "pool", output: "pooled" });
  g.op("Flatten", [p], {}, { name: "flatten", output: "y" });
  g.outputs.push({ name: "y", dtype: "float32", shape: ["batch", 3] });
  return encodeModel(modelOf(g, { "": 17 }));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function roundTrip(runs: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "qat-bench-frames-"));
  const t = new LocalTransport({ home: join(dir, "home") });
  try {
    await setupDevice(t);
    const { client } = await connectAgent(t);
    const model = averagingModel();
    const put = await client.put(model, { kind: "model", name: "bench-frames" });
    const ev = await client.openEvaluation(put.sha256);
    const n = 32;
    const data = Float32Array.from({ length: n * 3 * 224 * 224 }, (_, i) => (i % 1000) / 1000);
    const labels = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 3));
    const x = { name: "x", dtype: "float32", dims: [n, 3, 224, 224], data };
    const wall: number[] = [];
    const board: number[] = [];
    for (let r = 0; r <= runs; r++) {
      const t0 = performance.now();
      const res = await client.runBatch(ev.session, [x], labels, ["y"]);
      const ms = performance.now() - t0;
      if (res.outputs[0]!.data.length !== n * 3) throw new Error("unexpected output size");
      if (r === 0) continue; // warm-up
      wall.push(ms);
      board.push(res.ms);
    }
    await client.closeEvaluation(ev.session);
    await client.close();
    const mib = (data.byteLength + labels.byteLength) / MiB;
    console.log(
      `round trip of one validate batch (32×3×224×224 float32, ${mib.toFixed(1)} MiB) through the local agent:` +
        ` median ${median(wall).toFixed(0)} ms (runs: ${wall.map((m) => m.toFixed(0)).join(", ")}),` +
        ` of which the board's run ${median(board).toFixed(1)} ms`,
    );
  } finally {
    await t.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const sizes = arg("--sizes", "4,16,19").split(",").map(Number);
  const runs = Number(arg("--runs", "5"));
  console.log(`frame decode, 64 KiB chunks, best of 3; Node ${process.version}`);
  for (const s of sizes) {
    const frame = encodeFrame({ t: "ok", id: 1 }, new Uint8Array(Math.round(s * MiB)).fill(3));
    let best = { ms: Number.POSITIVE_INFINITY, finished: true };
    for (let k = 0; k < 3; k++) {
      const r = decodeMs(frame, 64 * 1024, 60_000);
      if (r.ms < best.ms) best = r;
      if (r.ms > 5000) break; // a slow (quadratic) decoder: one run says enough
    }
    const rate = (s / (best.ms / 1000)).toFixed(0);
    console.log(
      `  ${String(s).padStart(3)} MiB: ${best.ms.toFixed(1)} ms (${rate} MiB/s)${best.finished ? "" : " (cut short)"}`,
    );
  }
  await roundTrip(runs);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
