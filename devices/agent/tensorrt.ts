/**
 * TensorRT on the board through trtexec: engines built once per model and build settings (cached beside the model
 * as models/<sha256>/tensorrt/<key>.plan), and evaluation batches run by trtexec on raw input files.
 *
 * Board-side code: Node built-ins only; installed beside the agent as tensorrt.mjs.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { dirname, join } from "node:path";
import { fsyncDir } from "./files.js";
import {
  AgentFailure,
  type BatchReply,
  type EvaluateBatchRequest,
  type TensorRef,
  type TrtBuildOptions,
  type TrtEngineInfo,
  type TrtInput,
} from "./protocol.js";
import { countCorrect, packTensors } from "./tensors.js";
import {
  findTrtexec,
  logTail,
  parseTrtOutputs,
  parseTrtPerformance,
  runTool,
  trtBuildArgs,
  trtName,
  trtShapesSpec,
  trtVersion,
} from "./trtexec.js";

/** An engine as the agent keeps it for an evaluation session. */
export interface TrtSession {
  trtexec: string;
  engine: string;
  /** The --shapes spec (dynamic inputs), or null when the model's shapes are fixed. */
  shapes: string | null;
  inputs: TrtInput[];
  iterations: number;
  /** Largest resident size seen of the trtexec processes (sampled from /proc), bytes. */
  peakRss: number;
}

export type TrtBuild = TrtEngineInfo & { shapes: string | null; inputs: TrtInput[] };

function checkedInputs(o: TrtBuildOptions): TrtInput[] {
  const inputs = Array.isArray(o.inputs) ? (o.inputs as { name?: unknown; dims?: unknown }[]) : [];
  if (
    !inputs.length ||
    !inputs.every(
      (i) =>
        typeof i.name === "string" &&
        Array.isArray(i.dims) &&
        i.dims.every((d) => Number.isInteger(d) && (d as number) > 0),
    )
  ) {
    throw new AgentFailure("bad-request", "tensorrt needs every input's name and whole-number dims");
  }
  return inputs.map((i) => ({ name: i.name as string, dims: i.dims as number[] }));
}

/**
 * Build (or find, cached beside the model) a TensorRT engine of the model at `onnx` with trtexec: the inputs'
 * shapes come from the host (`inputs`: name and dims, batch included; `dynamic`: pass them as --shapes), `int8`
 * enables int8 precision (QDQ models: explicit quantization with the model's own scales).
 */
export async function buildEngine(onnx: string, sha: string, o: TrtBuildOptions): Promise<TrtBuild> {
  const ins = checkedInputs(o);
  const shapes = o.dynamic === true ? trtShapesSpec(ins) : null;
  const trtexec = findTrtexec(typeof o.trtexec === "string" ? o.trtexec : undefined);
  const help = await runTool(trtexec, ["--help"], 120_000);
  const version = trtVersion(help.stdout + help.stderr);
  const argv = trtBuildArgs(onnx, "ENGINE", { version, shapes, int8: o.int8 === true });
  const key = createHash("sha256")
    .update(JSON.stringify({ version, argv: argv.filter((a) => !a.startsWith("--onnx=")) }))
    .digest("hex")
    .slice(0, 16);
  const dir = join(dirname(onnx), "tensorrt");
  const engine = join(dir, `${key}.plan`);
  const shown = (a: string): string => (a.startsWith("--saveEngine=") ? `--saveEngine=${engine}` : a);
  const found = { trtexec, version, engine, shapes, inputs: ins };
  if (fs.existsSync(engine)) return { ...found, cached: true, buildMs: 0, argv: argv.map(shown) };
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${engine}.${process.pid}.tmp`;
  const real = argv.map((a) => (a === "--saveEngine=ENGINE" ? `--saveEngine=${tmp}` : a));
  const t0 = Date.now();
  const r = await runTool(trtexec, real, 3_600_000);
  if (r.code !== 0 || /&&&& FAILED/.test(r.stdout) || !fs.existsSync(tmp)) {
    fs.rmSync(tmp, { force: true });
    throw new AgentFailure(
      "trt-build-failed",
      `${trtexec} could not build an engine from model ${sha.slice(0, 16)} (exit ${r.code}): ${logTail(r)}`,
    );
  }
  fs.renameSync(tmp, engine);
  fsyncDir(dir);
  return { ...found, cached: false, buildMs: Date.now() - t0, argv: real.map(shown) };
}

/** Write the batch's inputs as raw files for --loadInputs; returns the files and the spec. */
function inputFiles(
  trt: TrtSession,
  refs: TensorRef[],
  payload: Uint8Array,
  tmpDir: string,
  tag: string,
  files: string[],
): string[] {
  const loads: string[] = [];
  for (const [i, ref] of refs.entries()) {
    const want = trt.inputs.find((x) => x.name === ref.name);
    if (!want)
      throw new AgentFailure("bad-request", `input '${ref.name}' is not one the engine was built for`);
    if (ref.dtype !== "float32" || ref.dims.join("x") !== want.dims.join("x")) {
      throw new AgentFailure(
        "bad-request",
        `input '${ref.name}': the engine takes float32 [${want.dims}], got ${ref.dtype} [${ref.dims}]`,
      );
    }
    const f = join(tmpDir, `${tag}-in${i}.bin`);
    if (/[,:]/.test(f))
      throw new AgentFailure("bad-request", `the agent home ${dirname(tmpDir)} has ',' or ':' in it`);
    fs.writeFileSync(f, payload.subarray(ref.offset, ref.offset + ref.length));
    files.push(f);
    loads.push(`${trtName(ref.name)}:${f}`);
  }
  return loads;
}

/** One batch through trtexec: inputs as raw files (--loadInputs), outputs from --exportOutput's JSON. */
export async function runEngine(
  s: { trt: TrtSession; runs: number },
  req: EvaluateBatchRequest,
  payload: Uint8Array,
  tmpDir: string,
): Promise<{ reply: BatchReply; payload: Uint8Array }> {
  const trt = s.trt;
  const refs = req.inputs;
  const tag = `trt-${process.pid}-${Number(req.session)}-${s.runs}`;
  const files: string[] = [];
  const out = join(tmpDir, `${tag}-out.json`);
  try {
    const loads = inputFiles(trt, refs, payload, tmpDir, tag, files);
    const argv = [
      `--loadEngine=${trt.engine}`,
      `--loadInputs=${loads.join(",")}`,
      `--exportOutput=${out}`,
      ...(trt.shapes ? [`--shapes=${trt.shapes}`] : []),
      `--iterations=${trt.iterations}`,
      "--warmUp=0",
      "--duration=0",
    ];
    const r = await runTool(trt.trtexec, argv, 600_000);
    trt.peakRss = Math.max(trt.peakRss, r.peakRss);
    if (r.code !== 0 || /&&&& FAILED/.test(r.stdout) || !fs.existsSync(out)) {
      throw new AgentFailure("run-failed", `trtexec failed (exit ${r.code}): ${logTail(r)}`);
    }
    const perf = parseTrtPerformance(r.stdout);
    if (!perf.latency) {
      throw new AgentFailure("run-failed", `trtexec printed no 'Latency:' summary: ${logTail(r)}`);
    }
    const exported = parseTrtOutputs(fs.readFileSync(out, "utf8"));
    const names =
      Array.isArray(req.outputs) && req.outputs.length ? req.outputs : exported.map((o) => o.name);
    const tensors = names.map((n) => {
      const o = exported.find((x) => x.name === n);
      if (!o) {
        throw new AgentFailure(
          "run-failed",
          `trtexec exported no output '${n}' (it has ${exported.map((x) => x.name).join(", ")})`,
        );
      }
      return { name: n, dtype: "float32", dims: o.dims, data: o.values };
    });
    s.runs++;
    const packed = packTensors(tensors);
    const batch = refs[0]?.dims[0] ?? 1;
    const ms = perf.latency.median;
    return {
      reply: {
        outputs: packed.refs,
        ms,
        perSampleMs: ms / Math.max(1, batch),
        correct: countCorrect(req.labels, payload, tensors[0]!.data),
        maxRSS: trt.peakRss,
        runtime: "tensorrt",
        gpuComputeMs: perf.gpuCompute?.median ?? null,
        wallMs: r.ms,
      },
      payload: packed.payload,
    };
  } finally {
    for (const f of [...files, out]) fs.rmSync(f, { force: true });
  }
}
