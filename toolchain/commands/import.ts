import { Command } from "commander";
import { formatImportReport, importModel } from "../../src/nn/import/index.js";
import { emit } from "../output.js";
import { inputConvention } from "./train.js";

/** `qat import <model.onnx>`: what importing a float model for training does, without training it. */
export function importCommand(): Command {
  return new Command("import")
    .description(
      "import a float ONNX model for training and report ops, trainable and frozen parameters, batch and BN handling",
    )
    .argument("<model>", "an .onnx file")
    .option("--input-scale <s>", "multiply the dataset's stored values by s before the model")
    .option("--input-mean <m,...>", "then subtract these per-channel means")
    .option("--input-std <s,...>", "then divide by these per-channel standard deviations")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(
      (file: string, f: { inputScale?: string; inputMean?: string; inputStd?: string; json: boolean }) => {
        const { report } = importModel(file, { input: inputConvention({ from: file, ...f }) });
        emit(f, formatImportReport(report), report);
      },
    );
}
