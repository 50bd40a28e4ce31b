/**
 * qat: quantization-aware training in the deployment format — the library behind the `qat` command, imported as
 * `qat` (boards, deploy and validate are `qat/devices`).
 *
 * A short list of named re-exports, not `export *`: each name below is one a user needs to do what a CLI command
 * does, or to write a model, a dataset or a training loop of their own. Everything else under src/ is internal and
 * may change without notice. `test/package.test.ts` imports these names from the packed package.
 */

// Gradients: `expr` records an expression and differentiates it in ONNX Runtime (its `tensor` and `evaluate` are
// not the library's, hence a namespace); `appendBackward` is the reverse-mode autodiff that trains every model.
export * as expr from "./autodiff/expr.js";
export {
  AutodiffError,
  appendBackward,
  type BackwardOptions,
  type GradientRule,
  hasGradientRule,
  registerGradientRule,
  supportedOps,
} from "./autodiff/index.js";
// Data: named datasets (downloaded with a checksum or read from a folder), files, in-memory arrays, loaders
export { type AugmentOptions, augment } from "./data/augment.js";
export { ArrayDataset, type Dataset } from "./data/dataset.js";
export { DataError } from "./data/errors.js";
export { type Batch, DataLoader, type LoaderOptions } from "./data/loader.js";
export { type NamedDatasetOptions, openNamedDataset, type Split } from "./data/named.js";
export { type OpenOptions, openDataset } from "./data/open.js";
export { DATASET_NAMES } from "./data/sources.js";
export { type SplitOptions, splitValidation } from "./data/split.js";
// Object detection: boxes, YOLO-layout and COCO datasets, the synthetic MNIST detection set, NMS, decoding, COCO mAP
export { type AnchorOptions, generateAnchors, type KeypointDetection } from "./detect/anchors.js";
export { augmentDetection, type DetectionAugmentOptions, type DetectionSample } from "./detect/augment.js";
export { type Box, type Detection, iou, type LabeledBox, type NormBox } from "./detect/boxes.js";
export { type CocoOptions, openCocoDataset } from "./detect/coco.js";
export { type DetectionImage, type DetectionSet, loadImage } from "./detect/dataset.js";
export { type DecodeOptions, decodeUltralytics } from "./detect/decode.js";
export { decodeHead, type HeadOutputs } from "./detect/decode-head.js";
export { detectInput } from "./detect/detect-input.js";
export { agreementOf, type DetectValidationReport } from "./detect/drift-report.js";
export { type DetectSpec, inferDetectSpec, parseDetectSpec, readDetectSpec } from "./detect/head-spec.js";
export { fromLetterbox, type LetterboxInfo, letterbox, toLetterbox } from "./detect/letterbox.js";
export { type ClassAp, type EvalImage, evaluateMap, type MapOptions, type MapResult } from "./detect/map.js";
export { generateMnistDetect, type MnistDetectOptions } from "./detect/mnist-detect.js";
export { type NmsOptions, nms } from "./detect/nms.js";
export { type DetectionSummary, formatDetectionSummary } from "./detect/summary.js";
export { openYoloDataset, type YoloSplit } from "./detect/yolo.js";
// Export and verify: the int8 model of a QAT run, checked against its fake-quant simulation
export { ExportError } from "./export/errors.js";
export {
  EXPORT_META_KEY,
  type ExportFormat,
  type ExportOptions,
  type ExportResult,
  type ExportTarget,
  exportCheckpoint,
  exportToFile,
  FORMATS,
  TARGETS,
} from "./export/export.js";
export { type LatencyOptions, measureLatency } from "./export/latency.js";
export {
  checkParity,
  DEFAULT_THRESHOLDS,
  type ParityOptions,
  type ParityReport,
  type ParityThresholds,
} from "./export/parity.js";
export { loadQatSource, type QatSource } from "./export/source.js";
// Models: the zoo, layer builders, importing a float ONNX model from another framework
export { type Conv2dOptions, NetBuilder, type PoolOptions } from "./nn/builder.js";
export { type LayerFlops, modelFlops } from "./nn/flops.js";
export {
  formatImportReport,
  ImportError,
  type ImportOptions,
  type ImportReport,
  type ImportResult,
  type InputConvention,
  importModel,
  importOnnx,
} from "./nn/import/index.js";
export { loadStateDict, type NetModel, NnError, stateDict } from "./nn/model.js";
export {
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  Dropout,
  Flatten,
  GlobalAvgPool,
  HardSwish,
  type Layer,
  LeakyReLU,
  Linear,
  MaxPool2d,
  named,
  ReLU,
  ReLU6,
  Sigmoid,
  sequential,
  Tanh,
} from "./nn/sequential.js";
export { type ZooOptions, zooModel, zooNames } from "./nn/zoo.js";
// ONNX models in memory: read, write, inspect
export {
  decodeModel,
  encodeModel,
  loadModel,
  modelOf,
} from "./onnx/codec.js";
export type { DType } from "./onnx/dtype.js";
export { OnnxError } from "./onnx/errors.js";
export { foldConstants } from "./onnx/fold.js";
export { cloneGraph, type Graph, type Model, type Node, type ValueInfo } from "./onnx/ir.js";
export { NEWEST_OPSET, normalizeOpset, OLDEST_OPSET, WORKING_OPSET } from "./onnx/opset.js";
export { inferModelShapes } from "./onnx/shapes.js";
export { formatSummary, type ModelSummary, summarize } from "./onnx/summary.js";
export { f32, i64, type Tensor, toNumbers } from "./onnx/tensor.js";
// Quantization: qconfigs and presets, placement, calibration, fake quantization, per-layer sensitivity
export { type CalibrateRunOptions, type CalibrateRunResult, calibrateRun } from "./pipeline/calibrate.js";
// Training: whole runs (what `qat train` does) and the one-graph training step underneath
export {
  ConfigError,
  DEFAULTS,
  FINE_TUNE_DEFAULTS,
  resolveConfig,
  type TrainConfig,
} from "./pipeline/config.js";
export { type EvaluateFileOptions, type EvaluateFileResult, evaluateFile } from "./pipeline/evaluate.js";
export { type FloatRun, openFloatRun } from "./pipeline/float-run.js";
// `qat quantize`: a float model you ship to int8 within an accuracy budget, stage by stage
export {
  accuracyMetric,
  fidelityMetric,
  type MetricAccumulator,
  type MetricBatch,
  type MetricValue,
  OPTIONAL_STAGES,
  type OptionalStage,
  type Preprocess,
  QUANTIZE_FILES,
  QuantizeError,
  type QuantizeOptions,
  type QuantizeResult,
  type QuantMetric,
  quantizeModel,
  type StageRecord,
} from "./pipeline/quantize/index.js";
export { type SensitivityRunOptions, sensitivityRun } from "./pipeline/sensitivity.js";
export {
  type EpochEvent,
  type StepEvent,
  TrainError,
  type TrainHooks,
  type TrainResult,
  train,
  trainConfig,
} from "./pipeline/trainer.js";
export { type VerifyOptions, verifyExport } from "./pipeline/verify.js";
export { type CalibrationOptions, calibrate } from "./quant/calibrate.js";
export {
  DistillError,
  type DistillOptions,
  type DistillResult,
  distill,
  type OutputSegment,
} from "./quant/distill.js";
export { fakeQuantize, lowerFakeQuant, roundHalfEven } from "./quant/fake-quant.js";
export {
  type Candidate,
  type CandidateMetric,
  chooseMixedPrecision,
  MixedPrecisionError,
  type MixedPrecisionOptions,
  type MixedPrecisionResult,
  type PrecisionChange,
} from "./quant/mixed-precision.js";
export { OBSERVER_KINDS, type ObserverKind } from "./quant/observer.js";
export { type Placement, placementTable, placeQuant, quantizableLayers } from "./quant/placement.js";
export { applyQuant, type PrepareOptions } from "./quant/prepare.js";
export {
  intRange,
  isFloatLayer,
  type LayerQConfig,
  layerConfig,
  PRESETS,
  preset,
  presetNames,
  type QConfig,
  QConfigError,
  qconfigFrom,
  type TensorQConfig,
  validateQConfig,
} from "./quant/qconfig.js";
export {
  formatSensitivity,
  type LayerSensitivity,
  type SensitivityOptions,
  type SensitivityReport,
  sensitivity,
} from "./quant/sensitivity.js";
// Reports: the self-contained HTML page of a run (`qat report`)
export {
  gatherReport,
  REPORT_FILES,
  type ReportData,
  ReportError,
  type ReportOptions,
  type ReportResult,
  readDeviceReport,
  renderReport,
  writeReport,
} from "./report/index.js";
export { renderQuantizeSummary, writeQuantizeSummary } from "./report/quantize-summary.js";
export { EXACT_HOST_CONFIG } from "./runtime/host-config.js";
// ONNX Runtime sessions
export { fromOrt, openSession, run as runSession, type SessionOptions, toOrt } from "./runtime/session.js";
export { type Checkpoint, loadCheckpoint, saveCheckpoint } from "./train/checkpoint.js";
export {
  appendDistillLoss,
  type DistillKind,
  DistillLossError,
  type DistillLossSpec,
  type DistillSegment,
  distillLoss,
} from "./train/distill-loss.js";
export {
  argmax,
  argmaxRows,
  classify,
  EvalError,
  type EvaluateOptions,
  evalBatches,
  evaluate,
  evaluateModel,
  evaluateNet,
} from "./train/evaluate.js";
export type { ClassificationMetrics } from "./train/metrics.js";
export { OptimizerError, type OptimizerSpec } from "./train/optimizers.js";
export { RUN_FILES, RunFolder, RunFolderError } from "./train/run-folder.js";
export { ScheduleError, type ScheduleSpec, schedule } from "./train/schedules.js";
export {
  buildTrainingStep,
  EvalRunner,
  type LossSpec,
  StepError,
  type StepOptions,
  type StepResult,
  TrainingRunner,
  type TrainingStep,
} from "./train/step.js";
export { Rng } from "./util/rng.js";
