export { PreprocessedDataset, type QuantizeData } from "./data.js";
export {
  accuracyMetric,
  classifierOutput,
  fidelityMetric,
  type MetricAccumulator,
  type MetricBatch,
  type MetricValue,
  type QuantMetric,
} from "./metric.js";
export { QUANTIZE_FILES, quantizeModel } from "./quantize.js";
export {
  type LayerError,
  OPTIONAL_STAGES,
  type OptionalStage,
  type Preprocess,
  QuantizeError,
  type QuantizeOptions,
  type QuantizeResult,
  type StageName,
  type StageRecord,
} from "./types.js";
