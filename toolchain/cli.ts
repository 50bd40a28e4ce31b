#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { calibrateCommand } from "./commands/calibrate.js";
import { dataCommand } from "./commands/data.js";
import { deployCommand } from "./commands/deploy.js";
import { deviceCommand } from "./commands/device.js";
import { evalCommand } from "./commands/eval.js";
import { exportCommand } from "./commands/export.js";
import { importCommand } from "./commands/import.js";
import { inspectCommand } from "./commands/inspect.js";
import { quantizeCommand } from "./commands/quantize.js";
import { reportCommand } from "./commands/report.js";
import { sensitivityCommand } from "./commands/sensitivity.js";
import { trainCommand } from "./commands/train.js";
import { validateCommand } from "./commands/validate.js";
import { verifyCommand } from "./commands/verify.js";
import { exitCodeFor, reportError } from "./output.js";

/** The `qat` program: each command is a thin shell over a library function. */
export function program(): Command {
  const p = new Command("qat")
    .description("Quantization-aware training in ONNX, int8 export, and on-board validation for edge boards")
    .version("0.1.0")
    .showHelpAfterError()
    .option("--devices <file>", "the device registry (default $QAT_DEVICES or ~/.config/qat/devices.json)")
    .exitOverride();
  p.addCommand(inspectCommand());
  p.addCommand(dataCommand());
  p.addCommand(trainCommand());
  p.addCommand(evalCommand());
  p.addCommand(calibrateCommand());
  p.addCommand(quantizeCommand());
  p.addCommand(sensitivityCommand());
  p.addCommand(importCommand());
  p.addCommand(exportCommand());
  p.addCommand(verifyCommand());
  p.addCommand(deviceCommand());
  p.addCommand(deployCommand());
  p.addCommand(validateCommand());
  p.addCommand(reportCommand());
  // every (sub)command reports usage errors through main(), which exits 2
  const override = (c: Command): void => {
    c.exitOverride().showHelpAfterError();
    for (const sub of c.commands) override(sub);
  };
  override(p);
  return p;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : 2;
    }
    reportError(err);
    return exitCodeFor(err);
  }
}

const invoked = process.argv[1] ? realpathSync(process.argv[1]) : "";
if (invoked === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
