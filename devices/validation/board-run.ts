/**
 * The board's side of a validation: upload the model (and its probe copy) to the agent, open an evaluation session
 * (onnxruntime, or an engine trtexec builds), run every batch with its labels, and keep the latency of each batch
 * and the peak memory the agent reports.
 */
import type { AgentClient, EvaluationOptions, HostTensor } from "../client.js";
import { add, asFloat, batches, finish, gather, type RunResult } from "./batches.js";
import type { EvalSet, ValidateOptions } from "./options.js";
import type { Prepared } from "./prepare.js";

/** What the agent's evaluation session is opened with: the runtime's settings. */
function evaluationOptions(p: Prepared, set: EvalSet, opts: ValidateOptions): EvaluationOptions {
  const runtime = opts.runtime ?? "onnxruntime";
  return runtime === "tensorrt"
    ? {
        runtime,
        trtexec: opts.trtexec,
        inputs: [{ name: p.inputName, dims: [p.batchSize, ...set.sampleShape] }],
        dynamic: p.dynamic,
        int8: p.quantized,
        iterations: opts.trtIterations,
      }
    : { threads: opts.threads };
}

/** A batch's labels (the padding repeats the last real sample's). */
function batchLabels(p: Prepared, set: EvalSet, start: number, count: number): BigInt64Array {
  const labels = new BigInt64Array(p.batchSize);
  for (let i = 0; i < p.batchSize; i++) labels[i] = BigInt(set.labels[start + Math.min(i, count - 1)]!);
  return labels;
}

export async function runOnBoard(
  client: AgentClient,
  p: Prepared,
  set: EvalSet,
  opts: ValidateOptions,
): Promise<RunResult> {
  await client.put(p.bytes, { kind: "model", name: "validation" });
  if (p.probe)
    await client.put(p.probe.bytes, { kind: "model", name: "validation probe (with layer outputs)" });
  const ev = await client.openEvaluation(p.sha256, evaluationOptions(p, set, opts));
  const pev = p.probe ? await client.openEvaluation(p.probe.sha256, { threads: opts.threads }) : undefined;
  const main = gather([p.outputName]);
  const probed = p.probe ? gather([p.outputName, ...p.probe.names]) : undefined;
  const ms: number[] = [];
  const gpu: number[] = [];
  let peak = 0;
  try {
    for (const b of batches(p, set)) {
      const tensor: HostTensor = {
        name: p.inputName,
        dtype: "float32",
        dims: [p.batchSize, ...set.sampleShape],
        data: b.data,
      };
      const labels = batchLabels(p, set, b.start, b.count);
      const r = await client.runBatch(ev.session, [tensor], labels, [p.outputName]);
      ms.push(r.ms);
      if (typeof r.gpuComputeMs === "number") gpu.push(r.gpuComputeMs);
      peak = Math.max(peak, r.maxRSS);
      for (const o of r.outputs) add(main, o.name, o.dims, asFloat(o.data), p, b.count);
      if (pev && probed) {
        const q = await client.runBatch(pev.session, [tensor], undefined, [p.outputName, ...p.probe!.names]);
        peak = Math.max(peak, q.maxRSS);
        for (const o of q.outputs) add(probed, o.name, o.dims, asFloat(o.data), p, b.count);
      }
    }
  } finally {
    const closed = await client.closeEvaluation(ev.session);
    peak = Math.max(peak, closed.maxRSS);
    if (pev) peak = Math.max(peak, (await client.closeEvaluation(pev.session)).maxRSS);
  }
  const r = finish(main, probed, ms, p, peak);
  if (ev.tensorrt) {
    r.tensorrt = ev.tensorrt;
    r.gpuComputeMs = gpu;
  }
  return r;
}
