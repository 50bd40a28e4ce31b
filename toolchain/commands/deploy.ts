import { Command, Option } from "commander";
import { DEFAULT_KEEP, deployFile, rollbackDevice } from "../../devices/deploy-file.js";
import { formatDeploy, formatRollback } from "../../devices/device-text.js";
import { RUNTIMES, type Runtime } from "../../devices/validate.js";
import { optionalNumber, positiveInt } from "../args.js";
import { registryFile, tensorRtOnly } from "../device-flags.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";

interface DeployFlags {
  device?: string;
  keep: string;
  rollback?: boolean;
  runtime: Runtime;
  trtexec?: string;
  batch?: string;
  json?: boolean;
}

/** `qat deploy MODEL`: upload a model to a board (sha256-checked), make it current, keep the last N. */
export function deployCommand(): Command {
  return new Command("deploy")
    .description("deploy an ONNX model to a board (or --rollback to the version before)")
    .argument("[model]", "the .onnx file")
    .option("--device <name>", "device name or URI (default: the default device)")
    .option("--keep <n>", "versions to keep on the board, current included", String(DEFAULT_KEEP))
    .option("--rollback", "point current back to the version deployed before it", false)
    .addOption(
      new Option(
        "--runtime <runtime>",
        "tensorrt: also build the TensorRT engine on the board with trtexec (a Jetson; unverified on real Jetson hardware)",
      )
        .choices(RUNTIMES)
        .default("onnxruntime"),
    )
    .option(
      "--trtexec <path>",
      "tensorrt: trtexec on the board (default /usr/src/tensorrt/bin/trtexec, else PATH)",
    )
    .option("--batch <n>", "tensorrt: the batch size to build the engine for (default: the model's, else 1)")
    .option("--json", "print one JSON object as the last line of stdout", false)
    .action(async (model: string | undefined, f: DeployFlags, cmd: Command) => {
      if (f.rollback === (model !== undefined))
        throw new UsageError("give a model to deploy, or --rollback (not both)");
      tensorRtOnly(f.runtime, { "--trtexec": f.trtexec !== undefined, "--batch": f.batch !== undefined });
      if (f.rollback && f.runtime === "tensorrt")
        throw new UsageError(
          "--runtime tensorrt builds an engine for a model being deployed, not with --rollback",
        );
      const batch = optionalNumber(f.batch, "--batch", { integer: true, min: 1 });
      const keep = positiveInt(f.keep, "--keep");
      const registry = registryFile(cmd);
      if (f.rollback) {
        const r = await rollbackDevice({ device: f.device, registry });
        emit(f, formatRollback(r), r);
        return;
      }
      const r = await deployFile({
        model: model!,
        device: f.device,
        registry,
        keep,
        runtime: f.runtime,
        trtexec: f.trtexec,
        batch,
      });
      emit(f, formatDeploy(r, model!), r);
    });
}
