/**
 * ORT's own per-op-type time split of qat's training step, float and QAT, for zoo models.
 *
 *   npm run build && node dist/bench/step-profile.js [--models cifar-cnn,mobilenet-tiny] [--batch 64]
 *     [--threads 2] [--steps 20] [--preset ort-cpu] [--top 12] [--nodes 0] [--json]
 *
 * Each step graph runs `steps` times (after 3 warm-up runs) in a session with enableProfiling; the kernel times
 * of the profile are summed per op type. The QAT step is the one `qat train --qat` runs after the observer phase
 * (learned LSQ scales, lowered to Q/DQ) with its session options (optimisation "basic").
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { NetModel } from "../src/nn/model.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import { encodeModel } from "../src/onnx/codec.js";
import { QatTraining } from "../src/quant/qat-train.js";
import { ortSessionOptions, type SessionOptions, toOrt } from "../src/runtime/session.js";
import { buildTrainingStep, type TrainingStep } from "../src/train/step.js";
import { randomImages, stepBatches } from "./random-data.js";

export interface OpProfile {
  /** Sum of all kernel times per step, ms. */
  kernelMs: number;
  /** Wall time of a run per step, ms. */
  runMs: number;
  /** Op type → ms per step, descending. */
  byOp: [string, number][];
  /** Node count per op type in the optimised graph that ran. */
  nodes: Map<string, number>;
  /** Node (op type) → ms per step, descending. */
  byNode: [string, number][];
}

/** Run `step` with ORT profiling and sum kernel time per op type. */
export async function profileTrainingStep(
  step: TrainingStep,
  net: NetModel,
  batch: number,
  steps: number,
  opts: SessionOptions,
): Promise<OpProfile> {
  const prefix = `/tmp/qat-step-profile-${process.pid}-${Date.now()}`;
  // the options training uses (QAT: level "basic", no QDQ rewrites), plus profiling
  const session = await ort.InferenceSession.create(encodeModel(step.model), {
    ...ortSessionOptions(opts),
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  const feeds: Record<string, ort.Tensor> = {
    [step.lr]: new ort.Tensor("float32", Float32Array.of(0.001), []),
  };
  for (const c of step.carried) feeds[c.name] = toOrt(c.init);
  const { xs, ys } = stepBatches(net, batch);
  for (let i = 0; i < steps + 3; i++) {
    feeds[step.step] = new ort.Tensor("float32", Float32Array.of(i + 1), []);
    await session.run({ ...feeds, [step.x]: xs[i % 4]!, [step.labels]: ys[i % 4]! });
  }
  session.endProfiling();
  await session.release();
  const base = prefix.split("/").pop()!;
  const found = readdirSync("/tmp").filter((f) => f.startsWith(base) && f.endsWith(".json"));
  if (found.length === 0) throw new Error(`no ORT profile file ${prefix}*.json was written`);
  const file = join("/tmp", found.sort().at(-1)!);
  const events = JSON.parse(readFileSync(file, "utf8")) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string };
  }[];
  rmSync(file, { force: true });
  const byOp = new Map<string, number>();
  const nodes = new Map<string, Set<string>>();
  const byNode = new Map<string, number>();
  const runs: number[] = [];
  let total = 0;
  for (const e of events) {
    if (e.cat === "Session" && e.name === "model_run") runs.push(e.dur);
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const op = e.args?.op_name ?? "?";
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    if (!nodes.has(op)) nodes.set(op, new Set());
    nodes.get(op)!.add(e.name);
    const node = `${e.name.replace(/_kernel_time$/, "")} (${op})`;
    byNode.set(node, (byNode.get(node) ?? 0) + e.dur);
    total += e.dur;
  }
  // the first 3 runs are warm-up: scale the kernel totals by the timed share of the run time
  const timed = runs.slice(3);
  const share =
    timed.reduce((a, b) => a + b, 0) /
    Math.max(
      1,
      runs.reduce((a, b) => a + b, 0),
    );
  const perStep = (us: number) => (us * share) / steps / 1000;
  return {
    kernelMs: perStep(total),
    runMs: timed.reduce((a, b) => a + b, 0) / Math.max(1, timed.length) / 1000,
    byOp: [...byOp].map(([k, v]) => [k, perStep(v)] as [string, number]).sort((a, b) => b[1] - a[1]),
    nodes: new Map([...nodes].map(([k, v]) => [k, v.size])),
    byNode: [...byNode].map(([k, v]) => [k, perStep(v)] as [string, number]).sort((a, b) => b[1] - a[1]),
  };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

function print(label: string, p: OpProfile, top: number, topNodes: number): void {
  console.log(`  ${label}: run ${p.runMs.toFixed(1)} ms/step, kernels ${p.kernelMs.toFixed(1)} ms/step`);
  for (const [op, ms] of p.byOp.slice(0, top)) {
    const pct = ((100 * ms) / p.kernelMs).toFixed(1).padStart(5);
    console.log(`    ${op.padEnd(24)} ${ms.toFixed(2).padStart(8)} ms ${pct}%  (${p.nodes.get(op)} nodes)`);
  }
  if (topNodes > 0) console.log("    by node:");
  for (const [node, ms] of p.byNode.slice(0, topNodes)) {
    console.log(`      ${node.slice(0, 70).padEnd(70)} ${ms.toFixed(2).padStart(8)} ms`);
  }
}

async function main(): Promise<void> {
  const models = arg("models", "cifar-cnn,mobilenet-tiny").split(",");
  const batch = Number(arg("batch", "64"));
  const threads = Number(arg("threads", "2"));
  const steps = Number(arg("steps", "20"));
  const preset = arg("preset", "ort-cpu");
  const top = Number(arg("top", "12"));
  const topNodes = Number(arg("nodes", "0"));
  const json = process.argv.includes("--json");
  const opt = { optimizer: { kind: "sgd" as const, momentum: 0.9 } };
  const out: Record<string, unknown>[] = [];
  for (const name of models) {
    const net = zooModel(name, { seed: 1 });
    const data = randomImages(net.inputShape, 256, 7);
    prependNormalization(net, data.stats().mean, data.stats().std);
    const q = await QatTraining.create(net, { preset, calibrationBatches: 2 }, data, {
      batchSize: batch,
      threads,
    });
    const float = await profileTrainingStep(buildTrainingStep(net, opt), net, batch, steps, { threads });
    // the step after the observer phase: learned scales
    const late = 1_000_000;
    const qat = await profileTrainingStep(q.trainingStep(late, opt), q.netAt(late), batch, steps, {
      threads,
      ...q.sessionOptions,
    });
    console.log(`${name} (batch ${batch}, ${threads} threads, ${steps} profiled steps)`);
    print("float step", float, top, topNodes);
    print(`QAT step (${preset})`, qat, top, topNodes);
    out.push({
      model: name,
      float: { runMs: float.runMs, byOp: Object.fromEntries(float.byOp) },
      qat: { runMs: qat.runMs, byOp: Object.fromEntries(qat.byOp) },
    });
  }
  if (json) console.log(JSON.stringify({ bench: "step-profile", batch, threads, rows: out }));
}

if (process.argv[1]?.endsWith("step-profile.js")) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
