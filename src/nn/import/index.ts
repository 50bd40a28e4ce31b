export { type BatchReport, type BatchRewrite, makeBatchDynamic } from "./batch.js";
export { type BatchNormInfo, trainBatchNorm } from "./batchnorm.js";
export { type AppliedConvention, type InputLayout, inputLayout } from "./convention.js";
export { ImportError } from "./errors.js";
export {
  type ImportOptions,
  type ImportResult,
  type InputConvention,
  importModel,
  importOnnx,
} from "./importer.js";
export type { FlatOutputs, OutputPart } from "./outputs.js";
export type { ConstantPadRewrite } from "./pad-constants.js";
export { type FrozenTensor, opTable, type ParamSplit, splitParams } from "./params.js";
export { formatImportReport, type ImportReport } from "./report.js";
