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
