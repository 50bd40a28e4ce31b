/**
 * Validation: run one model on a board and on the host (onnxruntime-node, same bytes), and report how far the
 * board drifts — accuracy of each, top-1 agreement, per-class accuracy deltas, output differences in quantization
 * steps, the board's latency percentiles and peak memory. With a fake-quant simulation (the QAT checkpoint the model
 * was exported from) its accuracy and agreement with the board are reported too. With `layers`, intermediate
 * tensors are compared on both sides and the first layer whose values differ by more than `layerThreshold`
 * quantization steps is named. Fleets: several boards at once under a concurrency limit, one row per board.
 *
 * This is the public face of devices/validation/, one module per concept: options and report shapes, preparing the
 * model and set, the host's and the board's runs, drift statistics, the comparison, fleets, the human report and the
 * `qat validate` entry point (`validateOnDevices`).
 */
export { validateModel } from "./validation/board.js";
export { attributeLayers } from "./validation/compare.js";
export {
  type DetectValidationResult,
  resolveDetectSpec,
  type ValidateDetectOptions,
  validateDetectOnDevices,
} from "./validation/detect.js";
export { formatDetectReport } from "./validation/detect-format.js";
export { type EvalSetOptions, loadEvalSet } from "./validation/eval-set.js";
export { type FleetTarget, validateFleet } from "./validation/fleet.js";
export { formatDriftReport, formatFailures, formatFleet, formatLayers } from "./validation/format.js";
export { type HostReference, hostReference } from "./validation/host-run.js";
export {
  type ValidateOnDevicesOptions,
  type ValidationReport,
  type ValidationResult,
  validateOnDevices,
} from "./validation/on-devices.js";
export {
  DEFAULT_CONCURRENCY,
  DEFAULT_LAYER_THRESHOLD,
  DEFAULT_TRT_ITERATIONS,
  type EvalSet,
  RUNTIMES,
  type Runtime,
  type ValidateOptions,
} from "./validation/options.js";
export { assertTensorRtModel } from "./validation/prepare.js";
export type {
  ClassRow,
  DeviceReport,
  Difference,
  FirstDivergence,
  FleetReport,
  FleetRow,
  HostSimulation,
  LayerDrift,
  SimulationReport,
  Stats,
} from "./validation/report.js";
export { reportHint } from "./validation/report-hint.js";
export { difference, stats } from "./validation/statistics.js";
