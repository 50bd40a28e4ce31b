export { type BatchReport, type BatchRewrite, makeBatchDynamic } from "./batch.js";
export { type BatchNormInfo, trainBatchNorm } from "./batchnorm.js";
export { ImportError } from "./errors.js";
export {
  type ImportOptions,
  type ImportResult,
  type InputConvention,
  importModel,
  importOnnx,
} from "./importer.js";
export { type FrozenTensor, opTable, type ParamSplit, splitParams } from "./params.js";
export { formatImportReport, type ImportReport } from "./report.js";
