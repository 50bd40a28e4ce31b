/**
 * Gather what a run folder holds for the HTML report: the training curves (metrics.jsonl), the QAT checkpoint's
 * placement with its learned scales, sensitivity.json, the int8 model's `qat.export` metadata (parity), the device
 * report (`qat validate --json`) and model summaries. Two layouts: a pipeline folder (`npm run main`: float/ and qat/
 * run folders, model.int8.onnx, device-report.json beside them) and a single run folder of `qat train`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { EXPORT_META_KEY } from "../export/export.js";
import type { PlacementRow } from "../export/source.js";
import { loadModel } from "../onnx/codec.js";
import type { Model } from "../onnx/ir.js";
import { summarize } from "../onnx/summary.js";
import { toFloat32 } from "../onnx/tensor.js";
import type { SensitivityReport } from "../quant/sensitivity.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import { RUN_FILES, RunFolder } from "../train/run-folder.js";
import { readDeviceReport } from "./device-report.js";
import {
  type EpochPoint,
  type ExportInfo,
  type ModelInfo,
  type QuantInfo,
  type QuantRow,
  type ReportData,
  ReportError,
  type RunInfo,
} from "./types.js";

export interface GatherOptions {
  /** The device report (`qat validate --json` output); default `<run>/device-report.json` when it exists. */
  deviceReport?: string;
  /** The int8 model; default `<run>/model.int8.onnx`, else an .onnx in the folder with `qat.export` metadata. */
  int8?: string;
  /** Sensitivity analysis (`qat sensitivity --json` output); default `<run>/sensitivity.json` or the float run's. */
  sensitivity?: string;
}

/** Default names of the files `npm run main` writes beside the run folders. */
export const REPORT_FILES = {
  int8: RUN_FILES.int8,
  deviceReport: RUN_FILES.deviceReport,
  sensitivity: RUN_FILES.sensitivity,
  html: "report.html",
} as const;

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ReportError(`cannot read ${what}: ${(e as Error).message}`, file);
  }
  try {
    return JSON.parse(text);
  } catch {
    // `qat … --json > file` keeps one JSON object as the last line
    try {
      return JSON.parse(text.trim().split("\n").at(-1) ?? "");
    } catch (e) {
      throw new ReportError(`${what} is not valid JSON (${(e as Error).message})`, file);
    }
  }
}

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

/** The epoch records of metrics.jsonl (a torn last line of a killed run is skipped). */
function readMetrics(run: RunFolder, phase: EpochPoint["phase"]): EpochPoint[] {
  return run
    .readMetrics()
    .filter((m) => m.kind === "epoch")
    .map((m) => ({ ...(m as unknown as Omit<EpochPoint, "phase">), phase }));
}

/** A run folder of `qat train` (config.json) or `qat calibrate` (a checkpoint with calibrated_from). */
function readRun(dir: string): RunInfo {
  const run = new RunFolder(dir);
  if (run.has("config")) {
    const cfg = readJson(run.path("config"), "the run's config") as {
      model?: string;
      from?: string;
      data?: string;
      qat?: { preset?: string };
    };
    const phase = cfg.qat ? "qat" : "float";
    const summary = run.has("summary")
      ? (readJson(run.path("summary"), "the run's summary") as RunInfo["summary"] & {
          test?: { per_class?: number[]; count?: number };
        })
      : undefined;
    return {
      dir,
      phase,
      model: cfg.from ? basename(cfg.from) : (cfg.model ?? "?"),
      dataset: cfg.data ?? "?",
      qatPreset: cfg.qat?.preset,
      epochs: readMetrics(run, phase),
      summary: summary && {
        ...summary,
        count: summary.test?.count,
        per_class: summary.test?.per_class ?? summary.per_class,
      },
    };
  }
  const ck = run.readCheckpoint();
  if (!ck) throw new ReportError(`not a run folder: no ${RUN_FILES.config} or ${RUN_FILES.checkpoint}`, dir);
  const meta = ck.meta as { calibrated_from?: string; quant?: { settings?: { preset?: string } } };
  return {
    dir,
    phase: meta.quant ? "ptq" : "float",
    model: "?",
    dataset: "?",
    qatPreset: meta.quant?.settings?.preset,
    epochs: [],
  };
}

/** A run folder path as recorded in a config (relative to where training ran), or beside `near`. */
function findRun(path: string | undefined, near: string): string | undefined {
  if (!path) return undefined;
  for (const p of [path, join(dirname(near), basename(path))]) {
    if (RunFolder.isRun(p)) return p;
  }
  return undefined;
}

const isRunFolder = (p: string): boolean => RunFolder.isRun(p);

/** The learned scales and zero points of every quantized tensor of a QAT (or calibrated) checkpoint. */
function readQuant(file: string): QuantInfo | undefined {
  const ck = loadCheckpoint(file);
  const meta = ck.meta as {
    quant?: {
      settings?: { preset?: string };
      qconfig?: { preset?: string };
      placement?: PlacementRow[];
    };
  };
  if (!meta.quant?.placement) return undefined;
  const values = (name: string): number[] => {
    const t = ck.graph.initializers.get(name);
    if (!t) throw new ReportError(`the checkpoint lacks '${name}' named by its placement table`, file);
    return Array.from(toFloat32(t));
  };
  const rows: QuantRow[] = meta.quant.placement.map((p) => {
    const scales = values(p.scale);
    const zeroPoints = values(p.zero_point);
    let lo = 0;
    let hi = 0;
    scales.forEach((s, i) => {
      const z = zeroPoints[zeroPoints.length === 1 ? 0 : i] ?? 0;
      // a negative learned scale covers the same range mirrored
      const a = (p.qmin - z) * Math.abs(s);
      const b = (p.qmax - z) * Math.abs(s);
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    });
    return {
      layer: p.layer,
      kind: p.kind,
      tensor: p.tensor,
      dtype: p.dtype,
      bits: p.bits,
      qmin: p.qmin,
      qmax: p.qmax,
      axis: p.axis,
      scales,
      zeroPoints,
      rangeMin: lo,
      rangeMax: hi,
    };
  });
  return { checkpoint: file, preset: meta.quant.settings?.preset ?? meta.quant.qconfig?.preset ?? "?", rows };
}

function modelInfo(file: string, label: string, model?: Model): ModelInfo {
  const m = model ?? loadModel(file);
  return { label, file, bytes: statSync(file).size, summary: summarize(m) };
}

function readExport(file: string): { info?: ExportInfo; model: Model } {
  let model: Model;
  try {
    model = loadModel(file);
  } catch (e) {
    throw new ReportError(`cannot read the int8 model: ${(e as Error).message}`, file);
  }
  const raw = model.metadata[EXPORT_META_KEY];
  if (raw === undefined) return { model };
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(raw);
  } catch {
    throw new ReportError(`the ${EXPORT_META_KEY} metadata is not valid JSON`, file);
  }
  const source = m.source as { checkpoint?: string } | undefined;
  return {
    model,
    info: {
      ...modelInfo(file, "int8 model", model),
      format: String(m.format),
      target: String(m.target),
      opset: Number(m.opset),
      sourceCheckpoint: source?.checkpoint,
      simulation: m.simulation as ExportInfo["simulation"],
      parity: m.parity as ExportInfo["parity"],
      warnings: (m.warnings as string[] | undefined) ?? [],
    },
  };
}

/** An .onnx file in `dir` (other than the run's own files) that `qat export` wrote. */
function findInt8(dirs: string[]): string | undefined {
  for (const d of dirs) {
    const named = new RunFolder(d).path("int8");
    if (existsSync(named)) return named;
  }
  const own = new Set<string>(Object.values(RUN_FILES));
  for (const d of dirs) {
    for (const f of readdirSync(d).sort()) {
      if (!f.endsWith(".onnx") || own.has(f)) continue;
      try {
        if (loadModel(join(d, f)).metadata[EXPORT_META_KEY] !== undefined) return join(d, f);
      } catch {
        // not an ONNX model qat can read: not ours
      }
    }
  }
  return undefined;
}

function readSensitivity(file: string): SensitivityReport {
  const r = readJson(file, "the sensitivity report") as Partial<SensitivityReport>;
  if (!Array.isArray(r?.layers) || typeof r.float !== "number")
    throw new ReportError(
      "not a sensitivity report (no layers): give the sensitivity.json that 'qat sensitivity' writes",
      file,
    );
  return r as SensitivityReport;
}

/** Everything the report shows, from a run folder of either layout. Sections without data say what to run. */
export function gatherReport(root: string, opts: GatherOptions = {}): ReportData {
  if (!isDir(root)) throw new ReportError("no such run folder", root);
  let float: RunInfo | undefined;
  let qat: RunInfo | undefined;
  let layout: ReportData["layout"];
  if (isRunFolder(root)) {
    layout = "run";
    const run = readRun(root);
    if (run.phase === "float") float = run;
    else {
      qat = run;
      // the float run a QAT run started from (--init), or a calibration was made from
      const rootRun = new RunFolder(root);
      const cfg = rootRun.has("config")
        ? (readJson(rootRun.path("config"), "the run's config") as { init?: string })
        : {};
      const from =
        cfg.init ??
        (rootRun.readCheckpoint()?.meta as { calibrated_from?: string } | undefined)?.calibrated_from;
      const fr = findRun(from, root);
      const f = fr ? readRun(fr) : undefined;
      if (f?.phase === "float") float = f;
    }
  } else {
    const subs = readdirSync(root)
      .sort()
      .map((d) => join(root, d))
      .filter(isRunFolder);
    if (!subs.length)
      throw new ReportError(
        `not a run folder: no ${RUN_FILES.config} or ${RUN_FILES.checkpoint}, and no run folder inside ` +
          "(pass a folder written by 'qat train', or runs/main-<time> of 'npm run main')",
        root,
      );
    layout = "pipeline";
    const runs = subs.map(readRun);
    const floats = runs.filter((r) => r.phase === "float");
    const quantized = runs.filter((r) => r.phase !== "float");
    // a pipeline folder holds one float run and one QAT run; more is a folder of runs (such as runs/)
    if (floats.length > 1 || quantized.length > 1)
      throw new ReportError(
        `holds ${runs.length} run folders (${subs.map((s) => basename(s)).join(", ")}), not one pipeline run: ` +
          "pass one of them",
        root,
      );
    float = floats[0];
    qat = quantized[0];
  }

  const data: ReportData = { root, layout, generated: new Date().toISOString(), float, qat, missing: {} };
  const dirs = [root, ...(qat && qat.dir !== root ? [qat.dir] : [])];
  if (!float?.epochs.length && !qat?.epochs.length)
    data.missing.training = "run 'qat train' to get the training curves";

  const ck = qat && new RunFolder(qat.dir).path("checkpoint");
  if (ck && existsSync(ck)) data.quant = readQuant(ck);
  if (!data.quant)
    data.missing.quant = `run 'qat train --init ${float?.dir ?? "<float run>"} --qat ort-cpu' to get it`;

  const sens =
    opts.sensitivity ??
    [root, ...(float ? [float.dir] : [])]
      .map((d) => new RunFolder(d).path("sensitivity"))
      .find((f) => existsSync(f));
  if (sens) {
    data.sensitivity = { file: sens, report: readSensitivity(sens) };
    for (const row of data.quant?.rows ?? []) {
      const l = data.sensitivity.report.layers.find((x) => x.layer === row.layer);
      if (l && row.kind === "weight")
        row.sensitivity = { accuracy: l.accuracy, delta: l.delta, weightBits: l.weightBits };
    }
  } else
    data.missing.sensitivity = `run 'qat sensitivity ${float?.dir ?? "<float run>"}' (it writes sensitivity.json into that run) to get it`;

  const int8 = opts.int8 ?? findInt8(dirs);
  if (opts.int8 && !existsSync(opts.int8)) throw new ReportError("no such int8 model", opts.int8);
  if (int8) {
    const ex = readExport(int8);
    data.export = ex.info;
    if (!ex.info)
      data.missing.export = `${int8} has no ${EXPORT_META_KEY} metadata: run 'qat export' to get it`;
  } else
    data.missing.export = `run 'qat export ${qat?.dir ?? "<QAT run>"} --out ${new RunFolder(root).path("int8")}' to get it`;

  const modelRun = float ?? qat;
  const modelFile = modelRun && new RunFolder(modelRun.dir).path("model");
  if (modelFile && existsSync(modelFile))
    data.floatModel = modelInfo(
      modelFile,
      modelRun === float ? "float model" : "QAT model (fake-quant simulation)",
    );
  if (!data.floatModel && !data.export) data.missing.model = "run 'qat train' to get it";

  if (opts.deviceReport && !existsSync(opts.deviceReport))
    throw new ReportError("no such device report", opts.deviceReport);
  const dev =
    opts.deviceReport ?? dirs.map((d) => new RunFolder(d).path("deviceReport")).find((f) => existsSync(f));
  if (dev) data.device = readDeviceReport(dev);
  else
    data.missing.device =
      `run 'qat validate ${int8 ?? "<model.int8.onnx>"} --data <dataset> --json > ${new RunFolder(root).path("deviceReport")}' ` +
      "to get it, or pass that output with --device-report";
  return data;
}
