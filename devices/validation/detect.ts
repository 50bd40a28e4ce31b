/**
 * `qat validate --task detect`: a detector on boards against the host, in detection terms — mAP50-95 and mAP50 of
 * each side on a YOLO-layout split, per-class AP deltas, box agreement, latency with post-processing. The head is
 * read from a spec file or inferred from the model's outputs (src/detect/head-spec.ts); the boards run the model
 * through their agent like any validation (SSH, serial, emulated and local boards alike); detections are decoded on
 * the host for both sides (see detect-run.ts for why).
 */
import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DataError } from "../../src/data/errors.js";
import type { KeypointDetection } from "../../src/detect/anchors.js";
import {
  agreementOf,
  type DetectBoardRow,
  type DetectMetrics,
  type DetectValidationReport,
} from "../../src/detect/drift-report.js";
import { type DetectSpec, inferDetectSpec, readDetectSpec } from "../../src/detect/head-spec.js";
import { evaluateMap } from "../../src/detect/map.js";
import type { YoloSplit } from "../../src/detect/yolo.js";
import { decodeModel } from "../../src/onnx/codec.js";
import type { Model } from "../../src/onnx/ir.js";
import { writeFileAtomic } from "../../src/util/atomic.js";
import { detectBoard } from "../boards.js";
import { openDevice } from "../registry.js";
import { connectAgent } from "../setup.js";
import type { Transport } from "../transport/channel.js";
import { type DetectRun, runDetectOnBoard, runDetectOnHost } from "./detect-run.js";
import { type DetectEvalSet, loadDetectEvalSet, openDetectSplit } from "./detect-set.js";
import { badInput, boards, readModel } from "./on-devices.js";
import { stats } from "./statistics.js";
import { latencySource } from "./timing.js";

export interface ValidateDetectOptions {
  /** The detector .onnx. */
  model: string;
  /** A YOLO-layout dataset: its data.yaml or the folder holding it. */
  data: string;
  split?: YoloSplit;
  /** The first `limit` images (0 or absent: all). */
  limit?: number;
  /** A detect spec (JSON); absent: inferred from the model's input and outputs. */
  spec?: string;
  devices?: string[] | "all";
  registry?: string;
  threads?: number;
  hostConfig?: Record<string, string>;
  /** Largest mAP50-95 loss (host − board, a fraction: 0.01 = one point) before `exceeded` is set. */
  maxDrift?: number;
  /** Images drawn in the report (default 6). */
  samples?: number;
  /** Detections scoring at least this are counted for agreement and drawn (default 0.25, or the spec's threshold). */
  drawScore?: number;
  save?: string;
}

export interface DetectValidationResult {
  report: DetectValidationReport;
  saved?: string;
}

export const POST_PROCESSING_NOTE =
  "decode + NMS in TypeScript on the host for both sides (the board's agent returns raw tensors); post-processing " +
  "time is measured on the host, per image, on the board's outputs";

/** The head spec: the file's, filled in from what the model says, or the model's alone. */
export function resolveDetectSpec(model: Model, classNames: readonly string[], file?: string): DetectSpec {
  const qatModel = model.producerName.startsWith("qat");
  const inferred = inferDetectSpec(model.graph, classNames, qatModel ? [0, 255] : [0, 1]);
  if (file) return readDetectSpec(file, inferred);
  if (!inferred)
    throw badInput(
      "cannot tell the detector's output layout from its shapes (not [1, 4+nc, N], [1, nc+4, h, w], or SSD scores [1, N, C] + boxes [1, N, 4]); give --detect-spec <file.json> (docs/detection.md)",
    );
  return inferred;
}

function metricsOf(es: DetectEvalSet, dets: KeypointDetection[][]): DetectMetrics {
  const names = es.set.classNames;
  const r = evaluateMap(
    es.set.images.map((im, i) => ({ gt: im.objects, dt: dets[i]! })),
    { numClasses: names.length },
  );
  return {
    map: r.map,
    map50: r.map50,
    perClass: r.perClass.map((c) => ({
      cls: c.cls,
      name: names[c.cls]!,
      gt: c.gtCount,
      ap: c.ap,
      ap50: c.ap50,
    })),
    pr50: r.pr50.map((p) => ({ cls: p.cls, name: names[p.cls]!, precision: p.precision })),
  };
}

function latency(r: DetectRun) {
  return {
    inference: stats(r.inferMs),
    post: stats(r.postMs),
    total: stats(r.inferMs.map((m, i) => m + r.postMs[i]!)),
  };
}

const drawn = (dets: KeypointDetection[], min: number) =>
  dets.filter((d) => d.score >= min).map(({ cls, score, box }) => ({ cls, score, box }));

function timingOf(t: Transport): DetectBoardRow["timing"] {
  const l = latencySource(t);
  return l.emulated ? { emulated: true, note: l.note } : { emulated: false };
}

/** One board: connect, run, compare with the host. */
async function boardRow(
  name: string,
  open: () => Promise<Transport>,
  ctx: {
    bytes: Uint8Array;
    es: DetectEvalSet;
    spec: DetectSpec;
    input: string;
    host: DetectRun;
    hostMetrics: DetectMetrics;
    opts: ValidateDetectOptions;
    drawScore: number;
    samples: number;
  },
): Promise<DetectBoardRow> {
  let t: Transport | undefined;
  try {
    t = await open();
    const { client, hello } = await connectAgent(t);
    let run: DetectRun;
    try {
      run = await runDetectOnBoard(client, ctx.bytes, ctx.es, ctx.spec, ctx.input, ctx.opts.threads);
    } finally {
      await client.close();
    }
    const metrics = metricsOf(ctx.es, run.detections);
    const h = ctx.hostMetrics;
    return {
      device: name,
      board: detectBoard(hello.facts).profile.id,
      arch: hello.facts.arch,
      metrics,
      delta: {
        map: metrics.map - h.map,
        map50: metrics.map50 - h.map50,
        perClass: metrics.perClass
          .filter((c) => c.gt > 0)
          .map((c) => ({
            cls: c.cls,
            name: c.name,
            host: h.perClass[c.cls]!.ap,
            board: c.ap,
            delta: c.ap - h.perClass[c.cls]!.ap,
          })),
      },
      agreement: agreementOf(ctx.host.detections, run.detections, 0.9, ctx.drawScore),
      latencyMs: latency(run),
      timing: timingOf(t),
      peakRssBytes: run.peakRss,
      samples: run.detections.slice(0, ctx.samples).map((d) => drawn(d, ctx.drawScore)),
    };
  } catch (e) {
    const err = e as Error & { code?: string };
    return {
      device: name,
      error: { code: typeof err.code === "string" ? err.code : "error", message: err.message },
    };
  } finally {
    await t?.close().catch(() => {});
  }
}

/** Validate a detector on boards against the host; save the JSON report when asked. */
export async function validateDetectOnDevices(opts: ValidateDetectOptions): Promise<DetectValidationResult> {
  const entries = boards(opts);
  if (opts.save && !(existsSync(dirname(opts.save)) && statSync(dirname(opts.save)).isDirectory()))
    throw badInput(`--save ${opts.save}: the folder ${dirname(opts.save)} does not exist`);
  const bytes = readModel(opts.model);
  const model = decodeModel(bytes, { path: opts.model });
  const split = openDetectSplit(opts.data, opts.split);
  const spec = resolveDetectSpec(model, split.classNames, opts.spec);
  const es = loadDetectEvalSet(split, spec, opts.limit, opts.data);
  const input = spec.input.name ?? model.graph.inputs[0]?.name;
  if (!input) throw new DataError("the model has no input", { file: opts.model });
  const drawScore = opts.drawScore ?? Math.max(0.25, spec.scoreThreshold);
  const nSamples = Math.min(opts.samples ?? 6, es.inputs.length);
  const host = await runDetectOnHost(bytes, es, spec, input, opts.hostConfig);
  const hostMetrics = metricsOf(es, host.detections);
  const ctx = { bytes, es, spec, input, host, hostMetrics, opts, drawScore, samples: nSamples };
  const rows: DetectBoardRow[] = [];
  // one board at a time: a detection set is small and boards of one fleet often share one host's CPU in tests
  for (const e of entries) rows.push(await boardRow(e.name, () => openDevice(e), ctx));
  const failed = rows.filter((r) => r.error).length;
  const maxDrift = opts.maxDrift;
  const report: DetectValidationReport = {
    task: "detect",
    model: opts.model,
    dataset: opts.data,
    split: opts.split ?? "val",
    images: es.inputs.length,
    classNames: es.set.classNames,
    head: { format: spec.format, spec: opts.spec ?? "inferred from the model" },
    postProcessing: POST_PROCESSING_NOTE,
    host: { metrics: hostMetrics, latencyMs: latency(host) },
    rows,
    drawScore,
    samples: es.set.images.slice(0, nSamples).map((im, i) => ({
      file: im.file,
      width: im.width,
      height: im.height,
      gt: im.objects,
      host: drawn(host.detections[i]!, drawScore),
    })),
    failed,
    exceeded: failed > 0 || (maxDrift !== undefined && rows.some((r) => r.delta && -r.delta.map > maxDrift)),
  };
  if (!opts.save) return { report };
  writeFileAtomic(opts.save, `${JSON.stringify(report, null, 2)}\n`);
  return { report, saved: opts.save };
}
