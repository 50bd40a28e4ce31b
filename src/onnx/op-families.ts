/** Families of ONNX ops that several passes treat alike (opset normalisation, shape inference, batch rewrites). */

/** Elementwise ops of one tensor: the output has the input's shape; their meaning is the same at opsets 1–21. */
export const ELEMENTWISE_UNARY: readonly string[] = [
  "Relu",
  "LeakyRelu",
  "Sigmoid",
  "Tanh",
  "HardSigmoid",
  "HardSwish",
  "Exp",
  "Log",
  "Sqrt",
  "Abs",
  "Neg",
  "Erf",
  "Softplus",
  "Softsign",
  "Elu",
  "Selu",
  "Celu",
  "ThresholdedRelu",
  "Round",
  "Floor",
  "Ceil",
  "Reciprocal",
  "Sign",
  "Not",
  "Sin",
  "Cos",
  "Tan",
  "Asin",
  "Acos",
  "Atan",
  "Sinh",
  "Cosh",
  "Asinh",
  "Acosh",
  "Atanh",
];

/** Normalisations within each sample: the output has the input's shape. */
export const PER_SAMPLE_NORMALIZATION: readonly string[] = ["LRN", "InstanceNormalization"];

/** Ops whose output is int64 indices or sizes, whatever their input. */
export const INT64_RESULT: readonly string[] = ["Shape", "Size", "ArgMax", "ArgMin", "NonZero"];

/** Comparisons, logic and tests: a bool output. */
export const BOOL_RESULT: readonly string[] = [
  "Equal",
  "Greater",
  "Less",
  "GreaterOrEqual",
  "LessOrEqual",
  "Not",
  "And",
  "Or",
  "Xor",
  "IsNaN",
  "IsInf",
];

/** The Reduce* family (axes as an attribute up to opset 17, ReduceSum's from 13, an input for all from 18). */
export const REDUCE: readonly string[] = [
  "ReduceSum",
  "ReduceMean",
  "ReduceMax",
  "ReduceMin",
  "ReduceProd",
  "ReduceL1",
  "ReduceL2",
  "ReduceLogSum",
  "ReduceLogSumExp",
  "ReduceSumSquare",
];
