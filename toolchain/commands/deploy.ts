import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { Command, Option } from "commander";
import { buildTrtEngine, deployModel, rollback } from "../../devices/deploy.js";
import { resolveDevice } from "../../devices/registry.js";
import { UsageError } from "../errors.js";
import { emit } from "../output.js";
import { registryOpts, withDevice } from "./device.js";

interface DeployFlags {
  device?: string;
  keep: string;
  rollback?: boolean;
  runtime: "onnxruntime" | "tensorrt";
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
    .option("--keep <n>", "versions to keep on the board, current included", "3")
    .option("--rollback", "point current back to the version deployed before it", false)
    .addOption(
      new Option(
        "--runtime <runtime>",
        "tensorrt: also build the TensorRT engine on the board with trtexec (a Jetson; unverified on real Jetson hardware)",
      )
        .choices(["onnxruntime", "tensorrt"])
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
      if (f.runtime !== "tensorrt" && (f.trtexec !== undefined || f.batch !== undefined))
        throw new UsageError("--trtexec and --batch apply to --runtime tensorrt");
      if (f.rollback && f.runtime === "tensorrt")
        throw new UsageError(
          "--runtime tensorrt builds an engine for a model being deployed, not with --rollback",
        );
      const batch = f.batch === undefined ? undefined : Number(f.batch);
      if (batch !== undefined && (!Number.isInteger(batch) || batch < 1))
        throw new UsageError(`--batch must be a whole number ≥ 1, got '${f.batch}'`);
      const keep = Number(f.keep);
      if (!Number.isInteger(keep) || keep < 1)
        throw new UsageError(`--keep must be a whole number ≥ 1, got '${f.keep}'`);
      const entry = resolveDevice(f.device, registryOpts(cmd));
      if (f.rollback) {
        const r = await withDevice(entry, (t) => rollback(t));
        emit(f, `${entry.name}: rolled back from ${r.from?.slice(0, 16) ?? "none"} to ${r.to.slice(0, 16)}`, {
          ...r,
          device: entry.name,
        });
        return;
      }
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(model!);
      } catch (e) {
        throw new UsageError(`cannot read ${model}: ${(e as Error).message}`);
      }
      const { r, engine } = await withDevice(entry, async (t) => {
        const r = await deployModel(bytes, t, { keep, name: basename(model!) });
        const engine =
          f.runtime === "tensorrt"
            ? await buildTrtEngine(bytes, t, { trtexec: f.trtexec, batch })
            : undefined;
        return { r, engine };
      });
      let human =
        `${entry.name}: ${r.uploaded ? "uploaded" : "already had"} ${basename(model!)} (${r.sha256.slice(0, 16)}, ${r.bytes} B); ` +
        (r.previous === r.sha256
          ? "already current"
          : `current (previous ${r.previous?.slice(0, 16) ?? "none"})`) +
        `, keeping ${r.history.length}` +
        (r.removed.length ? `, removed ${r.removed.length}` : "");
      if (engine) {
        human +=
          `\n${entry.name}: TensorRT ${engine.version ?? "(version not printed)"} engine for batch ${engine.batch}: ${engine.engine} ` +
          `(${engine.cached ? "built before" : `built in ${(engine.buildMs / 1000).toFixed(1)} s`}; unverified on real Jetson hardware)`;
      }
      emit(f, human, { ...r, device: entry.name, ...(engine ? { tensorrt: engine } : {}) });
    });
}
