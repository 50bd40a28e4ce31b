/**
 * Does the PyTorch twin compute what qat trains? The training-mode forward pass (BN on batch statistics) of qat's
 * network and of its twin, from the same weights and the same batch of random 0–255 images: max |qat − torch| over
 * the output, and the largest |output| for scale.
 *
 *   npm run build && node dist/bench/twin-check.js [--models tiny-det,blazeface,bn-residual] [--batch 4] [--graph]
 *
 * Twins: the hand-written ones of bench/torch/models.py (zoo models, bn-residual) load qat's state_dict and read the
 * normalised input; the graph twins (blazeface, and any model with --graph) are rebuilt by bench/torch/graph_twin.py
 * from qat's dumped training graph (bench/graph-dump.ts), normalisation included. qat side: ORT on `net.train`.
 * Models with Dropout (mobilenet-tiny) are flagged `dropout: true`: the two sides draw different masks.
 * `node dist/bench/qat-throughput.js --check` runs the same check before timing each model.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { NetModel } from "../src/nn/model.js";
import { modelOf } from "../src/onnx/codec.js";
import { cloneGraph } from "../src/onnx/ir.js";
import { fromOrt, openSession } from "../src/runtime/session.js";
import { benchNet, GRAPH_TWINS } from "./bench-models.js";
import { dumpGraph, npyBytes } from "./graph-dump.js";
import { stepBatches } from "./random-data.js";
import { runTorchScript, torchProblem } from "./torch/python.js";

export interface TwinCheck {
  model: string;
  /** "graph": bench/torch/graph_twin.py from the dump; "module": the hand-written twin of models.py. */
  twin: "graph" | "module";
  batch: number;
  max_abs_diff: number;
  max_abs_output: number;
  /** The training graph has Dropout: its random masks differ between the sides, so the outputs do too. */
  dropout?: true;
}

/** Run `fn` with a temp folder holding `net`'s dumped training graph (bench/graph-dump.ts), removed afterwards. */
export async function withGraphDump<T>(net: NetModel, fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "qat-bench-graph-"));
  try {
    dumpGraph(net, dir);
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The value the network proper reads: the output of the normalisation benchNet prepends (src/nn/normalize.ts). */
function normalizedInput(net: NetModel): string {
  const n = net.train.nodes.find((m) => m.name === "normalize_mul");
  if (!n) throw new Error(`${net.name}: no input normalisation node 'normalize_mul' in the training graph`);
  return n.outputs[0]!;
}

export async function checkTwin(
  model: string,
  opts: { batch?: number; graph?: boolean; threads?: number } = {},
): Promise<TwinCheck> {
  const batch = opts.batch ?? 4;
  const { net } = benchNet(model);
  const twin = opts.graph || GRAPH_TWINS.has(model) ? "graph" : "module";
  const g = cloneGraph(net.train);
  const normalized = normalizedInput(net);
  g.outputs = [
    { name: net.output, dtype: "float32" },
    { name: normalized, dtype: "float32" },
  ];
  const session = await openSession(modelOf(g), { threads: opts.threads ?? 2 });
  const x = stepBatches(net, batch, 11).xs[0]!;
  const out = await session.run({ [net.input]: x }, [net.output, normalized]);
  await session.release();
  return withGraphDump(net, (dir) => {
    // the graph twin reads the raw images (its graph normalises them); the hand-written twin the normalised ones
    writeFileSync(join(dir, "x.npy"), npyBytes(fromOrt(twin === "graph" ? x : out[normalized]!)));
    writeFileSync(join(dir, "y.npy"), npyBytes(fromOrt(out[net.output]!)));
    const r = JSON.parse(
      runTorchScript("graph_twin.py", ["check", dir, model, twin]).trim().split("\n").at(-1)!,
    );
    return {
      model,
      twin,
      batch,
      max_abs_diff: r.max_abs_diff as number,
      max_abs_output: r.max_abs_output as number,
      ...(net.train.nodes.some((n) => n.opType === "Dropout") ? { dropout: true as const } : {}),
    };
  });
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const problem = torchProblem();
  if (problem) throw new Error(`PyTorch unavailable: ${problem}`);
  const models = arg("models", "tiny-det,blazeface,bn-residual").split(",");
  const rows: TwinCheck[] = [];
  for (const m of models) {
    const r = await checkTwin(m, {
      batch: Number(arg("batch", "4")),
      graph: process.argv.includes("--graph"),
    });
    console.error(JSON.stringify(r));
    rows.push(r);
  }
  console.log(JSON.stringify({ bench: "twin-check", rows }));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
