/**
 * A PyTorch model with BatchNorm and a residual Add, exported to ONNX in inference form and imported by qat: its
 * training-mode loss, gradients and BN running statistics against PyTorch's for the same batch.
 *
 *   npm run build && node dist/bench/import-grads.js [--opset 13] [--batch 6] [--seed 0]
 *
 * bench/torch/export_bn_residual.py writes the .onnx and PyTorch's reference (float64 from the same float32 values)
 * into a temp dir; qat imports the file, builds its gradient graph and runs it in ORT. Relative error per tensor:
 * max |qat − torch| / max |torch|.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importModel } from "../src/nn/import/index.js";
import { modelOf } from "../src/onnx/codec.js";
import { f32, i64, type Tensor } from "../src/onnx/tensor.js";
import { openSession, run } from "../src/runtime/session.js";
import { buildGradientGraph } from "../src/train/step.js";
import { runTorchScript } from "./torch/python.js";
import type { GradComparison, GradRow } from "./torch-grads.js";

interface Reference {
  torch: string;
  x: { dims: number[]; data: number[] };
  labels: number[];
  eval_logits: number[];
  loss: number;
  grads: Record<string, number[]>;
  buffers: Record<string, number[]>;
}

export interface ImportComparison extends GradComparison {
  /** The imported evaluation graph's logits against PyTorch's eval-mode output. */
  evalLogits: GradRow;
  /** Parameters PyTorch has that qat did not train (should be none). */
  untrained: string[];
  torchVersion: string;
}

export async function compareImportedGradients(
  opts: { opset?: number; batch?: number; seed?: number } = {},
): Promise<ImportComparison> {
  const dir = mkdtempSync(join(tmpdir(), "qat-import-grads-"));
  try {
    const args = [
      dir,
      "--opset",
      String(opts.opset ?? 13),
      "--batch",
      String(opts.batch ?? 6),
      "--seed",
      String(opts.seed ?? 0),
    ];
    runTorchScript("export_bn_residual.py", args);
    const ref = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as Reference;
    const { net } = importModel(join(dir, "bn_residual.onnx"));
    const x = f32(ref.x.dims, ref.x.data);
    const labels = i64([ref.labels.length], ref.labels);

    const gg = buildGradientGraph(net);
    const session = await openSession(gg.model, { threads: 1 });
    const feeds: Record<string, Tensor> = { [net.input]: x, labels };
    for (const k of [...net.params, ...net.buffers]) feeds[k] = net.train.initializers.get(k)!;
    const out = await run(session, feeds);
    await session.release();

    const evalSession = await openSession(modelOf(net.eval), { threads: 1 });
    const logits = (await run(evalSession, { [net.input]: x }))[net.output]!;
    await evalSession.release();

    const row = (name: string, mine: ArrayLike<number | bigint>, theirs: number[]): GradRow => {
      if (mine.length !== theirs.length)
        throw new Error(`${name}: ${mine.length} values from qat, ${theirs.length} from torch`);
      let maxAbsDiff = 0;
      let maxAbsTorch = 0;
      for (let i = 0; i < theirs.length; i++) {
        maxAbsDiff = Math.max(maxAbsDiff, Math.abs(Number(mine[i]!) - theirs[i]!));
        maxAbsTorch = Math.max(maxAbsTorch, Math.abs(theirs[i]!));
      }
      return { name, rel: maxAbsTorch > 0 ? maxAbsDiff / maxAbsTorch : maxAbsDiff, maxAbsDiff, maxAbsTorch };
    };
    const data = (t: Tensor) => t.data as Float32Array | BigInt64Array;
    const grads = Object.keys(ref.grads)
      .filter((p) => gg.grads.has(p))
      .map((p) => row(p, data(out[gg.grads.get(p)!]!), ref.grads[p]!));
    // a bias right before a training-mode BN has a zero gradient in exact arithmetic (the batch mean removes it):
    // PyTorch's float64 gives ~1e-16, so its error is measured against the largest gradient of the model instead
    const scale = Math.max(...grads.map((r) => r.maxAbsTorch));
    for (const r of grads) {
      if (r.maxAbsTorch < 1e-9 * scale)
        Object.assign(r, { name: `${r.name} (zero: error / largest gradient)`, rel: r.maxAbsDiff / scale });
    }
    return {
      model: `bn_residual (torch ${ref.torch}, opset ${opts.opset ?? 13})`,
      loss: { qat: (out[gg.loss]!.data as Float32Array)[0]!, torch: ref.loss },
      grads,
      // num_batches_tracked is not in an ONNX file (the exporter drops it): qat counts from the import on
      buffers: net.buffers
        .filter((b) => !b.endsWith(".num_batches_tracked"))
        .map((b) => row(b, data(out[net.updates.get(b)!]!), ref.buffers[b] ?? [])),
      evalLogits: row("eval logits", data(logits), ref.eval_logits),
      untrained: Object.keys(ref.grads).filter((p) => !gg.grads.has(p)),
      torchVersion: ref.torch,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { formatComparison } = await import("./torch-grads.js");
  const args = process.argv.slice(2);
  const flag = (k: string) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : undefined);
  const c = await compareImportedGradients({
    opset: flag("--opset"),
    batch: flag("--batch"),
    seed: flag("--seed"),
  });
  console.log(formatComparison(c));
  console.log(`  eval logits (inference mode) max rel err ${c.evalLogits.rel.toExponential(2)}`);
  if (c.untrained.length) console.log(`  NOT trained by qat: ${c.untrained.join(", ")}`);
  const worst = Math.max(...c.grads.map((r) => r.rel), ...c.buffers.map((r) => r.rel));
  console.log(`worst relative error: ${worst.toExponential(2)} (${worst <= 1e-4 ? "within" : "ABOVE"} 1e-4)`);
  process.exitCode = worst <= 1e-4 && c.untrained.length === 0 ? 0 : 1;
}

if (process.argv[1]?.endsWith("import-grads.js")) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
