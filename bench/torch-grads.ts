/**
 * qat's gradients against PyTorch's, from the same initial weights and batch.
 *
 *   npm run build && node dist/bench/torch-grads.js [mnist-cnn] [resnet8] [--batch 16]
 *
 * Exports a zoo model's state_dict and a batch as raw little-endian files + meta.json, runs
 * bench/torch/grads.py on them (training mode, cross-entropy mean), runs qat's gradient graph in ORT and prints,
 * per parameter, the max absolute difference divided by the max magnitude of PyTorch's gradient; also the BN
 * running statistics after the step.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stateDict, zooModel } from "../src/nn/index.js";
import { f32, i64, numel, type Tensor } from "../src/onnx/tensor.js";
import { openSession, run } from "../src/runtime/session.js";
import { buildGradientGraph } from "../src/train/step.js";
import { Rng } from "../src/util/rng.js";
import { runTorchScript } from "./torch/python.js";

export interface GradRow {
  name: string;
  /** max |qat − torch| / max |torch| over the tensor. */
  rel: number;
  maxAbsDiff: number;
  maxAbsTorch: number;
}

export interface GradComparison {
  model: string;
  loss: { qat: number; torch: number };
  grads: GradRow[];
  buffers: GradRow[];
}

export async function compareGradients(
  model: string,
  opts: { batch?: number; seed?: number; labelSmoothing?: number } = {},
): Promise<GradComparison> {
  const batch = opts.batch ?? 16;
  const net = zooModel(model, { seed: opts.seed ?? 1 });
  // dropout draws different masks in ORT and PyTorch: compare with it off on both sides (ratio 0)
  const dropouts = net.train.nodes.filter((n) => n.opType === "Dropout");
  for (const n of dropouts) net.train.initializers.set(n.inputs[1]!, f32([], [0]));
  const rng = new Rng((opts.seed ?? 1) + 1000);
  const xs = new Float32Array(batch * numel(net.inputShape));
  for (let i = 0; i < xs.length; i++) xs[i] = rng.normal();
  const x = f32([batch, ...net.inputShape], xs);
  const labels = i64(
    [batch],
    Array.from({ length: batch }, () => rng.int(10)),
  );

  const dir = mkdtempSync(join(tmpdir(), "qat-grads-"));
  try {
    const state = stateDict(net);
    const write = (name: string, t: Tensor) => {
      const d = t.data as Float32Array | BigInt64Array;
      writeFileSync(join(dir, `${name}.bin`), new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    };
    for (const [k, t] of state) write(k, t);
    write("x", x);
    write("labels", labels);
    const labelSmoothing = opts.labelSmoothing ?? 0;
    const meta = {
      model,
      batch,
      labelSmoothing,
      dropoutOff: dropouts.length > 0,
      state: [...state].map(([name, t]) => ({ name, dims: t.dims, dtype: t.dtype })),
    };
    writeFileSync(join(dir, "meta.json"), JSON.stringify(meta));
    const torchOut = JSON.parse(runTorchScript("grads.py", [dir])) as { loss: number };

    const gg = buildGradientGraph(net, { loss: { kind: "cross-entropy", labelSmoothing } });
    const session = await openSession(gg.model, { threads: 1 });
    const feeds: Record<string, Tensor> = { [net.input]: x, labels };
    for (const [k, t] of state) feeds[k] = t;
    const out = await run(session, feeds);
    await session.release();

    const read = (file: string, like: Tensor): ArrayLike<number> => {
      const b = readFileSync(join(dir, "torch", file));
      const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      return like.dtype === "int64" ? Array.from(new BigInt64Array(ab), Number) : new Float32Array(ab);
    };
    const row = (name: string, ours: Tensor, file: string): GradRow => {
      const theirs = read(file, ours);
      const mine =
        ours.dtype === "int64" ? Array.from(ours.data as BigInt64Array, Number) : (ours.data as Float32Array);
      let maxAbsDiff = 0;
      let maxAbsTorch = 0;
      for (let i = 0; i < theirs.length; i++) {
        maxAbsDiff = Math.max(maxAbsDiff, Math.abs(mine[i]! - theirs[i]!));
        maxAbsTorch = Math.max(maxAbsTorch, Math.abs(theirs[i]!));
      }
      if (theirs.length !== mine.length)
        throw new Error(`${name}: ${mine.length} values from qat, ${theirs.length} from torch`);
      return { name, rel: maxAbsTorch > 0 ? maxAbsDiff / maxAbsTorch : maxAbsDiff, maxAbsDiff, maxAbsTorch };
    };
    return {
      model,
      loss: { qat: (out[gg.loss]!.data as Float32Array)[0]!, torch: torchOut.loss },
      grads: net.params.map((p) => row(p, out[gg.grads.get(p)!]!, `${p}.grad.bin`)),
      buffers: net.buffers.map((b) => row(b, out[net.updates.get(b)!]!, `${b}.bin`)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatComparison(c: GradComparison): string {
  const lines = [`${c.model}: loss qat ${c.loss.qat.toFixed(7)}  torch ${c.loss.torch.toFixed(7)}`];
  lines.push(
    `  ${"gradient of".padEnd(40)} ${"max rel err".padStart(12)} ${"max |diff|".padStart(12)} ${"max |torch|".padStart(12)}`,
  );
  const fmt = (r: GradRow) =>
    `  ${r.name.padEnd(40)} ${r.rel.toExponential(2).padStart(12)} ${r.maxAbsDiff.toExponential(2).padStart(12)} ${r.maxAbsTorch.toExponential(2).padStart(12)}`;
  lines.push(...c.grads.map(fmt));
  if (c.buffers.length) {
    lines.push(`  ${"buffer after the step".padEnd(40)}`);
    lines.push(...c.buffers.map(fmt));
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const bi = args.indexOf("--batch");
  const batch = bi >= 0 ? Number(args[bi + 1]) : 16;
  const models = args.filter((a, i) => !a.startsWith("--") && (bi < 0 || i !== bi + 1));
  let worst = 0;
  for (const m of models.length ? models : ["mnist-cnn", "resnet8"]) {
    const c = await compareGradients(m, { batch });
    console.log(formatComparison(c));
    worst = Math.max(worst, ...c.grads.map((r) => r.rel), ...c.buffers.map((r) => r.rel));
  }
  console.log(`worst relative error: ${worst.toExponential(2)} (${worst <= 1e-4 ? "within" : "ABOVE"} 1e-4)`);
  process.exitCode = worst <= 1e-4 ? 0 : 1;
}

if (process.argv[1]?.endsWith("torch-grads.js")) {
  main().catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  });
}
