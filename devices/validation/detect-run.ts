/**
 * Both sides of a detection validation run the model image by image (batch 1: exported detectors often fix it) and
 * return the raw output tensors; the detections come from one TypeScript decoder (`decodeHead`) run on the host for
 * both. Post-processing on the host keeps the agent a plain tensor runner (no detection code or protocol on the
 * board) and makes any host/board difference the model's numbers, never the decoder's; its time is measured per
 * image on the board's outputs and reported beside the board's inference time.
 */
import type { KeypointDetection } from "../../src/detect/anchors.js";
import { decodeHead, type HeadOutputs } from "../../src/detect/decode-head.js";
import type { DetectSpec } from "../../src/detect/head-spec.js";
import { toFloat32 } from "../../src/onnx/tensor.js";
import { EXACT_HOST_CONFIG } from "../../src/runtime/host-config.js";
import { openSession, run } from "../../src/runtime/session.js";
import type { AgentClient } from "../client.js";
import { asFloat } from "./batches.js";
import type { DetectEvalSet } from "./detect-set.js";

export interface DetectRun {
  /** Per image, in the image's pixels. */
  detections: KeypointDetection[][];
  /** Per image: the model's run, and decode + NMS. */
  inferMs: number[];
  postMs: number[];
  /** Peak resident memory the board's agent reported (0 on the host). */
  peakRss: number;
}

/** The outputs the head reads. */
export function headOutputNames(spec: DetectSpec): string[] {
  return spec.outputs.predictions
    ? [spec.outputs.predictions]
    : [...spec.outputs.scores, ...spec.outputs.boxes];
}

/** Decode each image's outputs, timing each. */
function decodeAll(outs: HeadOutputs[], spec: DetectSpec, es: DetectEvalSet) {
  const detections: KeypointDetection[][] = [];
  const postMs: number[] = [];
  outs.forEach((o, i) => {
    const t0 = performance.now();
    detections.push(decodeHead(o, spec, es.letterboxes[i]));
    postMs.push(performance.now() - t0);
  });
  return { detections, postMs };
}

export async function runDetectOnHost(
  bytes: Uint8Array,
  es: DetectEvalSet,
  spec: DetectSpec,
  inputName: string,
  hostConfig: Record<string, string> = EXACT_HOST_CONFIG,
): Promise<DetectRun> {
  const session = await openSession(bytes, { config: { ...hostConfig } });
  const names = headOutputNames(spec);
  const outs: HeadOutputs[] = [];
  const inferMs: number[] = [];
  try {
    for (const x of es.inputs) {
      const t0 = performance.now();
      const r = await run(session, { [inputName]: { dtype: "float32", dims: es.dims, data: x } }, names);
      inferMs.push(performance.now() - t0);
      outs.push(Object.fromEntries(names.map((n) => [n, { data: toFloat32(r[n]!), dims: r[n]!.dims }])));
    }
  } finally {
    await session.release();
  }
  return { ...decodeAll(outs, spec, es), inferMs, peakRss: 0 };
}

export async function runDetectOnBoard(
  client: AgentClient,
  bytes: Uint8Array,
  es: DetectEvalSet,
  spec: DetectSpec,
  inputName: string,
  threads?: number,
): Promise<DetectRun> {
  const { sha256 } = await client.put(bytes, { kind: "model", name: "detection validation" });
  const ev = await client.openEvaluation(sha256, { threads });
  const names = headOutputNames(spec);
  const outs: HeadOutputs[] = [];
  const inferMs: number[] = [];
  let peak = 0;
  try {
    for (const x of es.inputs) {
      const r = await client.runBatch(
        ev.session,
        [{ name: inputName, dtype: "float32", dims: es.dims, data: x }],
        undefined,
        names,
      );
      inferMs.push(r.ms);
      peak = Math.max(peak, r.maxRSS);
      outs.push(Object.fromEntries(r.outputs.map((o) => [o.name, { data: asFloat(o.data), dims: o.dims }])));
    }
  } finally {
    peak = Math.max(peak, (await client.closeEvaluation(ev.session)).maxRSS);
  }
  return { ...decodeAll(outs, spec, es), inferMs, peakRss: peak };
}
