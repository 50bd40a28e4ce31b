/**
 * Verify an exported int8 model after the fact: find the QAT checkpoint it came from (its `qat.export` metadata
 * names it) and run the parity check of `qat export` against it on a dataset.
 */
import { existsSync } from "node:fs";
import type { Dataset } from "../data/dataset.js";
import { ExportError } from "../export/errors.js";
import { EXPORT_META_KEY } from "../export/export.js";
import { checkParity, type ParityReport, type ParityThresholds } from "../export/parity.js";
import { loadQatSource, type QatSource } from "../export/source.js";
import { loadModel, modelOf } from "../onnx/codec.js";
import { WORKING_OPSET } from "../onnx/opset/working.js";
import { normalizeQdqScalars } from "../onnx/qdq-scalars.js";
import { EXACT_HOST_CONFIG } from "../runtime/host-config.js";

export interface VerifyOptions {
  /** The int8 .onnx file `qat export` wrote. */
  model: string;
  /** The QAT run folder or checkpoint.onnx it came from (default: the one its metadata names). */
  against?: string;
  /** The data, given the QAT source (whose run names its dataset). */
  data: (src: QatSource) => Promise<Dataset>;
  /** At most this many samples (0: all). */
  limit?: number;
  threads?: number;
  thresholds?: Partial<ParityThresholds>;
  /** Run the int8 model with EXACT_HOST_CONFIG (default true); false: ORT's default session options. */
  exact?: boolean;
}

export async function verifyExport(
  opts: VerifyOptions,
): Promise<{ source: QatSource; parity: ParityReport }> {
  const file = opts.model;
  const model = loadModel(file);
  // foreign int8 exports (PyTorch) carry [1]-shaped Q/DQ scales that ORT's fusion refuses
  normalizeQdqScalars(model);
  let against = opts.against;
  if (!against) {
    const raw = model.metadata[EXPORT_META_KEY];
    if (!raw)
      throw new ExportError(
        `no ${EXPORT_META_KEY} metadata: not exported by qat export; give --against <run folder>`,
        { file },
      );
    against = (JSON.parse(raw) as { source?: { checkpoint?: string } }).source?.checkpoint;
    if (!against || !existsSync(against)) {
      throw new ExportError(
        `the checkpoint it was exported from (${against}) is not there: give --against <run folder>`,
        { file },
      );
    }
  }
  const source = loadQatSource(against);
  const parity = await checkParity(model, modelOf(source.graph, { "": WORKING_OPSET }), {
    data: await opts.data(source),
    limit: opts.limit,
    threads: opts.threads,
    thresholds: opts.thresholds,
    hostConfig: opts.exact === false ? {} : { ...EXACT_HOST_CONFIG },
  });
  return { source, parity };
}
