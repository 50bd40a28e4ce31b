import { Command } from "commander";
import { hasGradientRule, stopsGradient } from "../../src/autodiff/index.js";
import { loadModel } from "../../src/onnx/codec.js";
import { formatSummary, summarize } from "../../src/onnx/summary.js";
import { emit } from "../output.js";

/** `qat inspect <model.onnx>`: what a model is made of, and what qat cannot train through. */
export function inspectCommand(): Command {
  return new Command("inspect")
    .description(
      "show a model's producer, opsets, inputs/outputs, op histogram, parameters, and untrainable ops",
    )
    .argument("<model>", "an .onnx file")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action((file: string, opts: { json: boolean }) => {
      const model = loadModel(file);
      const summary = summarize(model, {
        trainable: (n) => hasGradientRule(n.opType, n.domain) || stopsGradient(n.opType, n.domain),
      });
      emit(opts, formatSummary(summary), { file, ...summary });
    });
}
