/** Files of a run folder. */
export const RUN_FILES = {
  config: "config.json",
  metrics: "metrics.jsonl",
  checkpoint: "checkpoint.onnx",
  best: "best.onnx",
  model: "model.onnx",
  summary: "summary.json",
} as const;
