import { Command, Option } from "commander";
import { formatImportReport, importModel } from "../../src/nn/import/index.js";
import { placementTable, placeQuant } from "../../src/quant/placement.js";
import { presetNames, qconfigFrom } from "../../src/quant/qconfig.js";
import { inputConvention } from "../flags.js";
import { emit } from "../output.js";

type Row = ReturnType<typeof placementTable>[number];

/** What QAT with `preset` would quantize: one line per weight, then the activations. */
function formatPlan(preset: string, rows: Row[]): string {
  const w = rows.filter((r) => r.kind === "weight");
  const a = rows.filter((r) => r.kind === "activation");
  const lines = [`quantized by --qat ${preset}: ${w.length} weights, ${a.length} activations`];
  for (const r of w) {
    const per = (r.axis as number) >= 0 ? `per channel (axis ${r.axis})` : "per tensor";
    lines.push(
      `  weight      ${r.tensor}  ${r.op} '${r.node}'  ${r.dtype} ${per}${r.bias ? ", int32 bias" : ""}`,
    );
  }
  for (const r of a) lines.push(`  activation  ${r.tensor}  ${r.dtype} per tensor`);
  return lines.join("\n");
}

/** `qat import <model.onnx>`: what importing a float model for training does, without training it. */
export function importCommand(): Command {
  return new Command("import")
    .description(
      "import a float ONNX model for training and report ops, trainable and frozen parameters, batch and BN handling, and what QAT would quantize",
    )
    .argument("<model>", "an .onnx file")
    .option("--input-scale <s>", "multiply the dataset's stored values by s before the model")
    .option("--input-mean <m,...>", "then subtract these per-channel means")
    .option("--input-std <s,...>", "then divide by these per-channel standard deviations")
    .addOption(
      new Option("--qat [preset]", "also list the tensors QAT with this qconfig preset quantizes")
        .choices(presetNames())
        .preset("ort-cpu"),
    )
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(
      (
        file: string,
        f: { inputScale?: string; inputMean?: string; inputStd?: string; qat?: string; json: boolean },
      ) => {
        const { net, report } = importModel(file, { input: inputConvention(f) });
        let human = formatImportReport(report);
        let json: Record<string, unknown> = { ...report };
        if (f.qat) {
          const rows = placementTable(placeQuant(net, qconfigFrom(f.qat)));
          human += `\n${formatPlan(f.qat, rows)}`;
          json = { ...json, qat: { preset: f.qat, quantized: rows } };
        }
        emit(f, human, json);
      },
    );
}
