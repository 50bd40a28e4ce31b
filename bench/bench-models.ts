/**
 * The networks the throughput benches train: zoo models by name, "bn-residual", PyTorch's BN + residual conv net
 * (bench/torch/export_bn_residual.py) exported to ONNX at 3×32×32 and imported as `qat train --from` does, and
 * "blazeface", MediaPipe's BlazeFace (../shared/models/blazeface-front-128.onnx, NHWC 128×128×3) imported with every
 * output kept, as `qat quantize` imports detectors. Each comes with the inputs' normalisation prepended (random
 * 0–255 images) and calibration data.
 *
 * Classifiers train with cross-entropy on class labels. Models whose output is not class scores (tiny-det's
 * [batch, classes + 4, 24, 24] heatmaps and boxes, BlazeFace's flat [batch, 15232] scores and regressors) train with
 * a regression loss, the same on both sides: the mean squared error over every output element against fixed
 * random targets (PyTorch: F.mse_loss, reduction "mean").
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Dataset } from "../src/data/dataset.js";
import { importModel } from "../src/nn/import/index.js";
import type { NetModel } from "../src/nn/model.js";
import { prependNormalization } from "../src/nn/normalize.js";
import { zooModel } from "../src/nn/zoo.js";
import { appendDistillLoss } from "../src/train/distill-loss.js";
import type { GraphLoss } from "../src/train/step.js";
import { randomImages } from "./random-data.js";
import { runTorchScript } from "./torch/python.js";

/** The imported models; their PyTorch twins have the same names in bench/torch/models.py. */
export const IMPORTED = "bn-residual";
export const BLAZEFACE = "blazeface";

/** Models trained with the regression loss (bench/torch/models.py's REGRESSION has the same names). */
export const REGRESSION = new Set(["tiny-det", BLAZEFACE]);

/** Twins PyTorch builds from qat's dumped training graph (bench/graph-dump.ts, bench/torch/graph_twin.py). */
export const GRAPH_TWINS = new Set([BLAZEFACE]);

/** ../shared/models beside the repository, from bench/ or from dist/bench/. */
export function sharedModel(file: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.endsWith("/dist/bench") ? join(here, "..", "..") : join(here, "..");
  return join(root, "..", "shared", "models", file);
}

export interface BenchNet {
  net: NetModel;
  data: Dataset;
  /** The regression loss for models in REGRESSION; undefined: cross-entropy on class labels. */
  loss?: GraphLoss;
}

export function benchNet(name: string): BenchNet {
  let net: NetModel;
  let nhwc = false;
  if (name === IMPORTED) {
    const dir = mkdtempSync(join(tmpdir(), "qat-bench-import-"));
    try {
      runTorchScript("export_bn_residual.py", [dir, "--size", "32", "--batch", "2"]);
      net = importModel(join(dir, "bn_residual.onnx")).net;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else if (name === BLAZEFACE) {
    const r = importModel(sharedModel("blazeface-front-128.onnx"), { outputs: "all" });
    net = r.net;
    nhwc = r.report.input.layout === "nhwc";
  } else net = zooModel(name, { seed: 1 });
  const data = randomImages(net.inputShape, 256, 7);
  // BlazeFace reads NHWC pixels in [-1, 1]: one scalar normalisation, (x − 127.5) / 127.5, on every channel
  if (nhwc) prependNormalization(net, [127.5], [127.5]);
  else prependNormalization(net, data.stats().mean, data.stats().std);
  return { net, data, loss: REGRESSION.has(name) ? regressionLoss(net) : undefined };
}

/** One sample's output shape of `net` (from its training graph's shapes). */
export function outputShape(net: NetModel): number[] {
  const g = net.train;
  const shape = g.valueInfo.get(net.output)?.shape ?? g.outputs.find((o) => o.name === net.output)?.shape;
  const sample = shape?.slice(1);
  if (!sample?.length || !sample.every((d): d is number => typeof d === "number"))
    throw new Error(`output '${net.output}' of ${net.name} has no known per-sample shape ([${shape}])`);
  return sample;
}

/**
 * MSE over every element of the output against float targets given flat per sample ([batch, N]): the output is
 * flattened per sample and one "regression" segment of the distillation loss (src/train/distill-loss.ts) covers
 * it, scale and weight 1, so the loss is ReduceMean((y − t)²) over all batch × N elements — F.mse_loss's "mean".
 */
export function regressionLoss(net: NetModel): GraphLoss {
  const size = outputShape(net).reduce((a, b) => a * b, 1);
  const spec = { size, segments: [{ name: "output", offset: 0, size, kind: "regression" as const }] };
  const rank = outputShape(net).length + 1;
  return {
    kind: "graph",
    name: "mse",
    targetShape: [size],
    build: (g, output, targets) =>
      appendDistillLoss(
        g,
        rank > 2 ? g.op("Flatten", [output], { axis: 1 }, { name: "mse.flatten" }) : output,
        targets,
        spec,
      ),
  };
}
