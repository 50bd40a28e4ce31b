/**
 * `quantizeModel`: a float ONNX model a user already ships, plus their data, to a validated int8 model within an
 * accuracy budget. Stages run in order and the run stops at the first within `maxDrop` points of the float model:
 * reference → PTQ (observer per tensor) → better PTQ (CLE, AdaRound, bias correction) → QAT by distillation →
 * mixed precision; then the best model seen is exported (QDQ, parity-checked, the original's interface) with the
 * stage log. An unreachable budget still writes the best model; `withinBudget` is false and the CLI exits 1.
 * Bad input (model, data, preprocessing) throws before anything is written.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { importModel } from "../../nn/import/importer.js";
import type { ImportReport } from "../../nn/import/report.js";
import type { NetModel } from "../../nn/model.js";
import { placementTable } from "../../quant/placement.js";
import { presetNames, qconfigFrom } from "../../quant/qconfig.js";
import { saveCheckpoint } from "../../train/checkpoint.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { isDetectionData } from "../detect-trainer.js";
import { betterPtqCandidate } from "./better-ptq.js";
import { better, type Candidate } from "./candidate.js";
import { openQuantizeData, type QuantizeData } from "./data.js";
import { openDetectionData } from "./detect-data.js";
import { HeldOutEvaluator } from "./evaluator.js";
import { exportCandidate } from "./export-stage.js";
import { layerErrors } from "./layer-error.js";
import { accuracyMetric, fidelityMetric } from "./metric.js";
import { ptqCandidate, type StageContext } from "./ptq.js";
import { StageLog } from "./stage-log.js";
import { distillStage, mixedPrecisionStage, type StageResult } from "./training-stages.js";
import {
  OPTIONAL_STAGES,
  type OptionalStage,
  QuantizeError,
  type QuantizeOptions,
  type QuantizeResult,
  type StageName,
} from "./types.js";

export const QUANTIZE_FILES = {
  model: "model.int8.onnx",
  stages: "stages.json",
  checkpoint: "checkpoint.onnx",
};

export async function quantizeModel(opts: QuantizeOptions): Promise<QuantizeResult> {
  const preset = opts.preset ?? "ort-cpu";
  const maxDrop = opts.maxDrop ?? 1;
  if (!presetNames().includes(preset))
    throw new QuantizeError(`unknown preset '${preset}'; choose one of ${presetNames().join(", ")}`);
  if (!(maxDrop >= 0 && Number.isFinite(maxDrop)))
    throw new QuantizeError(`the accepted drop must be a number of points ≥ 0, got ${maxDrop}`);
  const run = await prepare(opts);
  const { net, report, data, evaluator } = run;
  refuseUntrainable(report, opts);
  const stages = new StageLog(() => run.reference, maxDrop, opts.log ?? (() => {}));
  await stages.run("reference", async () => {
    const m = await evaluator.measure(net.eval);
    run.reference = m.value;
    return {
      metric: m,
      changed: `float model, ${evaluator.metric.name} on ${evaluator.samples} held-out samples; ${data.describe}`,
      details: m.details,
    };
  });
  const { best: chosen, warnings } = await runStages(run, stages, { ...opts, preset, maxDrop });
  const reference = run.reference!;
  const out = opts.out;
  const files = {
    model: join(out, QUANTIZE_FILES.model),
    stages: join(out, QUANTIZE_FILES.stages),
    checkpoint: join(out, QUANTIZE_FILES.checkpoint),
  };
  const exported = await stages.run("export", () =>
    exportCandidate(chosen, opts.model, files.checkpoint, data.heldOut, { preset, threads: opts.threads }),
  );
  const layers = await layerErrors(chosen.float, chosen.quant, chosen.placement, data.heldOut, {
    threads: opts.threads,
  });
  const result: QuantizeResult = {
    model: opts.model,
    out,
    files: { model: files.model, stages: files.stages },
    preset,
    metric: { name: evaluator.metric.name, unit: evaluator.metric.unit, labelled: data.labelled },
    maxDrop,
    reference,
    final: chosen.metric.value,
    drop: reference - chosen.metric.value,
    withinBudget: stages.within(chosen.metric.value),
    exportedFrom: chosen.stage,
    stages: stages.records,
    layers,
    warnings,
    import: {
      input: report.input,
      outputs: report.outputs,
      batch: report.batch,
      opsKeptInFloat: report.opsKeptInFloat,
    },
  };
  // every file whole or absent: the model and its checkpoint first, the stage log (which names them) last
  mkdirSync(out, { recursive: true });
  writeFileAtomic(files.model, exported.bytes);
  saveCheckpoint(files.checkpoint, {
    graph: chosen.quant.eval,
    state: new Map(),
    meta: {
      quantized_from: opts.model,
      quant: { settings: { preset }, qconfig: chosen.qconfig, placement: placementTable(chosen.placement) },
    },
  });
  writeFileAtomic(files.stages, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

interface Prepared {
  net: NetModel;
  report: ImportReport;
  data: QuantizeData;
  evaluator: HeldOutEvaluator;
  /** The float model's metric, once stage 1 has measured it. */
  reference?: number;
}

/** Import the model (every output kept), open and check the data, and run the float model on the held-out part. */
async function prepare(opts: QuantizeOptions): Promise<Prepared> {
  const seed = opts.seed ?? 0;
  const { net, report } = importModel(opts.model, { outputs: "all", seed });
  const layout = opts.preprocess?.layout ?? report.input.layout;
  const input = { name: net.input, sampleShape: net.inputShape, layout };
  const dataOpts = {
    labels: opts.labels,
    dataDir: opts.dataDir,
    preprocess: opts.preprocess,
    evalSamples: opts.evalSamples ?? 1000,
    calibrationSamples: opts.calibrationSamples ?? 1024,
    seed,
  };
  // a YOLO folder brings its detection metric (mAP) and the head's distillation plan
  const data = isDetectionData(opts.data)
    ? await openDetectionData(opts.data, input, report.outputs, dataOpts)
    : await openQuantizeData(opts.data, input, dataOpts);
  if (
    !data.metric &&
    data.labelled &&
    !report.outputs?.some((o) => o.shape.length === 2 && Number(o.shape[1]) >= 2)
  ) {
    throw new QuantizeError(
      `the data has labels but ${opts.model} has no [batch, classes] output (${report.outputs?.map((o) => `${o.name} [${o.shape}]`).join(", ")}); ` +
        "give --labels none to measure fidelity to the float model instead",
    );
  }
  const metric = data.metric ?? (data.labelled ? accuracyMetric : fidelityMetric);
  const evaluator = await HeldOutEvaluator.create(net.eval, net.input, data.heldOut, metric, opts.threads);
  return { net, report, data, evaluator };
}

/** Stages 2–5, each only while the best candidate so far is over the budget; the best candidate and warnings. */
async function runStages(
  run: Prepared,
  stages: StageLog,
  opts: QuantizeOptions & { preset: string; maxDrop: number },
): Promise<{ best: Candidate; warnings: string[] }> {
  const { net, report } = run;
  const qconfig = qconfigFrom(opts.preset);
  const ptqNet = withFrozenLayers(net, report);
  const ctx: StageContext = {
    calibration: run.data.calibration,
    evaluator: run.evaluator,
    seed: opts.seed ?? 0,
    threads: opts.threads,
  };
  const blocking = report.opsKeptInFloat.filter((o) => o.blocking);
  const warnings = blocking.map(
    (o) =>
      `qat cannot train through ${o.opType} (${o.nodes.map((n) => `'${n}'`).join(", ")}): the layers before it are ` +
      "quantized post-training only, and QAT by distillation is skipped",
  );
  let best: Candidate | undefined;
  const keep = async (stage: StageName, fn: () => Promise<StageResult>): Promise<Candidate> => {
    const r = await stages.run(stage, async () => {
      const x = await fn();
      return { ...x, metric: x.candidate.metric };
    });
    best = better(best, r.candidate);
    return r.candidate;
  };
  const allowed = new Set(opts.stages ?? OPTIONAL_STAGES);
  const pending = (stage: OptionalStage) => {
    const needed = !best || !stages.within(best.metric.value);
    if (needed && !allowed.has(stage)) stages.skip(stage, "not among the stages allowed for this run");
    return needed && allowed.has(stage);
  };

  const ptq = await keep("ptq", () => ptqCandidate(ptqNet, qconfig, ctx));
  // later stages start from the better of the post-training candidates: its float model (equalized by CLE when
  // that helped) and its scales
  let base = ptq;
  if (pending("better-ptq")) {
    const b = await keep("better-ptq", () =>
      betterPtqCandidate(ptqNet, qconfig, ctx, {
        iterations: opts.adaroundIterations ?? 1000,
        cle: opts.cle ?? true,
      }),
    );
    base = better(ptq, b);
  }
  if (pending("distill")) {
    if (blocking.length) stages.skip("distill", warnings.join("; "));
    else {
      const steps = opts.distillSteps ?? 500;
      await keep("distill", () => distillStage(base, report, { ...ctx, steps, plan: run.data.distill }));
    }
  }
  if (pending("mixed-precision")) {
    const mpCtx = { ...ctx, reference: run.reference!, maxDrop: opts.maxDrop };
    await keep("mixed-precision", () => mixedPrecisionStage(base.float, qconfig, mpCtx));
  }
  return { best: best ?? ptq, warnings };
}

/**
 * Distillation asked for by name (`stages` given and holding "distill") on a model with an op qat cannot train
 * through is a request that cannot be served: refused before any work, naming the op and offering PTQ. With the
 * default stages the run goes on post-training only and says why (runStages' warnings).
 */
function refuseUntrainable(report: ImportReport, opts: QuantizeOptions): void {
  const blocking = report.opsKeptInFloat.filter((o) => o.blocking);
  if (!blocking.length || !opts.stages?.includes("distill")) return;
  const ops = blocking.map((o) => `${o.opType} (${o.nodes.map((n) => `'${n}'`).join(", ")})`).join(", ");
  const ptqOnly = opts.stages.filter((s) => s !== "distill");
  throw new QuantizeError(
    `QAT by distillation was asked for, but qat cannot train through ${ops} in ${opts.model}. ` +
      `It can still be quantized post-training: --stages ${(ptqOnly.length ? ptqOnly : ["better-ptq", "mixed-precision"]).join(",")}` +
      " (or leave --stages out: the run then skips distillation and says so)",
  );
}

/**
 * The float model as PTQ sees it: weights the importer froze because they sit behind an op qat cannot train
 * through are still Conv/Gemm weights to quantize post-training.
 */
function withFrozenLayers(net: NetModel, report: ImportReport): NetModel {
  const behind = report.params.frozen.filter((f) => f.reason.startsWith("behind ")).map((f) => f.name);
  return behind.length ? { ...net, params: [...net.params, ...behind] } : net;
}
