/**
 * The host's side of a validation: the same model bytes in onnxruntime-node with the one exact int8 config of the
 * host (EXACT_HOST_CONFIG), the probe copy beside it, and the fake-quant simulation when there is one. Computed once
 * and shared by every board of a fleet.
 */
import { toFloat32 } from "../../src/onnx/tensor.js";
import { EXACT_HOST_CONFIG } from "../../src/runtime/host-config.js";
import { openSession, run } from "../../src/runtime/session.js";
import { add, batches, finish, gather, joinParts, type RunResult } from "./batches.js";
import type { EvalSet, ValidateOptions } from "./options.js";
import { type Prepared, prepare } from "./prepare.js";

export interface HostRun extends RunResult {
  /** The simulation's first output, all samples (when it ran). */
  simulation?: Float32Array;
}

/** The host's side of a validation, computed once and shared by every board of a fleet. */
export interface HostReference {
  prepared: Prepared;
  result: HostRun;
}

async function runOnHost(p: Prepared, set: EvalSet, opts: ValidateOptions): Promise<HostRun> {
  const config = { ...(opts.hostConfig ?? EXACT_HOST_CONFIG) };
  const session = await openSession(p.bytes, { config });
  const probe = p.probe ? await openSession(p.probe.bytes, { config }) : undefined;
  const simModel = opts.simulation && "model" in opts.simulation ? opts.simulation.model : undefined;
  // the simulation runs as QAT ran it and as the parity check runs it: Q/DQ kept in float (optimisation "basic")
  const sim = simModel ? await openSession(simModel, { optimization: "basic" }) : undefined;
  const main = gather([p.outputName]);
  const probed = p.probe ? gather([p.outputName, ...p.probe.names]) : undefined;
  const simAcc = sim ? gather([p.outputName]) : undefined;
  const ms: number[] = [];
  try {
    for (const b of batches(p, set)) {
      const feeds = {
        [p.inputName]: { dtype: "float32" as const, dims: [p.batchSize, ...set.sampleShape], data: b.data },
      };
      const t0 = performance.now();
      const res = await run(session, feeds, [p.outputName]);
      ms.push(performance.now() - t0);
      add(main, p.outputName, res[p.outputName]!.dims, toFloat32(res[p.outputName]!), p, b.count);
      if (probe && probed) {
        const names = [p.outputName, ...p.probe!.names];
        const r = await run(probe, feeds, names);
        for (const n of names) add(probed, n, r[n]!.dims, toFloat32(r[n]!), p, b.count);
      }
      if (sim && simAcc) {
        const r = await run(sim, feeds, [p.outputName]);
        add(simAcc, p.outputName, r[p.outputName]!.dims, toFloat32(r[p.outputName]!), p, b.count);
      }
    }
  } finally {
    await session.release();
    await probe?.release();
    await sim?.release();
  }
  const r: HostRun = finish(main, probed, ms, p, 0);
  if (simAcc) r.simulation = joinParts(simAcc.get(p.outputName)!.parts);
  return r;
}

/** Check the model and set (see `prepare`) and run them on the host. */
export async function hostReference(
  modelBytes: Uint8Array,
  set: EvalSet,
  opts: ValidateOptions = {},
): Promise<HostReference> {
  const prepared = prepare(modelBytes, set, opts);
  return { prepared, result: await runOnHost(prepared, set, opts) };
}
