/**
 * trtexec, NVIDIA's command-line TensorRT tool on JetPack (/usr/src/tensorrt/bin/trtexec): finding it, the
 * arguments that build an engine, and reading what it prints and exports. Unverified on real Jetson hardware: the
 * flags and formats follow trtexec's documented options (TensorRT 8.2 … 10.x), and the tests drive a stand-in
 * trtexec that implements them with onnxruntime.
 *
 * Board-side code: Node built-ins only; installed beside the agent as trtexec.mjs.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { delimiter, join } from "node:path";
import { readText } from "./files.js";
import { AgentFailure } from "./protocol.js";

/** Where trtexec is on a board: a given path, JetPack's /usr/src/tensorrt/bin/trtexec, or PATH. */
export const TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec";

export function findTrtexec(given?: string, env: NodeJS.ProcessEnv = process.env): string {
  const isFile = (p: string): boolean => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  const onPath = (name: string): string | undefined =>
    (env.PATH ?? "")
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, name))
      .find(isFile);
  if (given) {
    const found = given.includes("/") ? (isFile(given) ? given : undefined) : onPath(given);
    if (!found) throw new AgentFailure("trtexec-missing", `trtexec '${given}' is not on the board`);
    return found;
  }
  const found = isFile(TRTEXEC_DEFAULT) ? TRTEXEC_DEFAULT : onPath("trtexec");
  if (!found) {
    throw new AgentFailure(
      "trtexec-missing",
      `trtexec is not on the board (looked for ${TRTEXEC_DEFAULT} and trtexec on PATH); ` +
        "it comes with JetPack's TensorRT (apt-get install tensorrt, or nvidia-jetpack)",
    );
  }
  return found;
}

/** TensorRT's version from trtexec's banner "[TensorRT v8601]" (8.6.1) or "[TensorRT v100300]" (10.3.0). */
export function trtVersion(log: string): string | null {
  const m = /\[TensorRT v(\d+)\]/.exec(log);
  if (!m) return null;
  const n = Number(m[1]);
  return n >= 100000
    ? `${Math.floor(n / 10000)}.${Math.floor(n / 100) % 100}.${n % 100}`
    : `${Math.floor(n / 1000)}.${Math.floor(n / 100) % 10}.${n % 100}`;
}

/** An input name as trtexec's specs want it: wrapped in single quotes when it holds ':' or ','. */
export function trtName(name: string): string {
  return /[:,]/.test(name) ? `'${name}'` : name;
}

/** trtexec's --shapes spec, e.g. "x:32x1x28x28". */
export function trtShapesSpec(inputs: { name: string; dims: number[] }[]): string {
  return inputs.map((i) => `${trtName(i.name)}:${i.dims.join("x")}`).join(",");
}

/**
 * The trtexec arguments that build an engine: --int8 for QDQ models (before TensorRT 11 explicit quantization
 * still needs the int8 builder flag; 11 builds strongly typed networks and dropped it), --skipInference
 * (--buildOnly before 8.6), --shapes for dynamic inputs (at build time it sets min = opt = max).
 */
export function trtBuildArgs(
  onnx: string,
  engine: string,
  o: { version: string | null; shapes: string | null; int8: boolean },
): string[] {
  const [major, minor] = (o.version ?? "10.0").split(".").map(Number) as [number, number];
  const args = [`--onnx=${onnx}`, `--saveEngine=${engine}`];
  if (o.int8 && major < 11) args.push("--int8");
  if (o.shapes) args.push(`--shapes=${o.shapes}`);
  args.push(major > 8 || (major === 8 && minor >= 6) ? "--skipInference" : "--buildOnly");
  return args;
}

export interface TrtTiming {
  min: number;
  max: number;
  mean: number;
  median: number;
  /** percentile → ms, e.g. { 90: …, 95: …, 99: … }. */
  percentiles: Record<string, number>;
}

/** The "=== Performance summary ===" lines of trtexec: "Latency: min = … ms, …, median = … ms, percentile(99%) = … ms". */
export function parseTrtPerformance(log: string): {
  latency?: TrtTiming;
  gpuCompute?: TrtTiming;
  throughput?: number;
} {
  const timing = (label: string): TrtTiming | undefined => {
    const line = log
      .split("\n")
      .find((l) => new RegExp(`\\] ${label}: min = |^${label}: min = `).test(l.trim()));
    if (!line) return undefined;
    const num = (k: string): number =>
      Number(new RegExp(`${k} = ([-+0-9.eE]+) ms`).exec(line)?.[1] ?? Number.NaN);
    const percentiles: Record<string, number> = {};
    for (const m of line.matchAll(/percentile\(([0-9.]+)%\) = ([-+0-9.eE]+) ms/g))
      percentiles[m[1]!] = Number(m[2]);
    const t = { min: num("min"), max: num("max"), mean: num("mean"), median: num("median"), percentiles };
    return Number.isFinite(t.median) ? t : undefined;
  };
  const tp = /Throughput: ([0-9.eE+-]+) qps/.exec(log);
  return {
    latency: timing("Latency"),
    gpuCompute: timing("GPU Compute Time"),
    throughput: tp ? Number(tp[1]) : undefined,
  };
}

/**
 * trtexec's --exportOutput file: a JSON list of { "name", "dimensions": "1x10", "values": [ … ] }, where values are
 * printed by C++ streams (six significant digits; "nan", "inf", "-inf" are not JSON, so they are read here).
 */
export function parseTrtOutputs(text: string): { name: string; dims: number[]; values: Float32Array }[] {
  const json = text.replace(/(?<=[[,\s])(-?)(nan|inf)(?=[\s,\]])/gi, (_m, sign: string, what: string) =>
    what.toLowerCase() === "nan" ? '"NaN"' : `"${sign}Infinity"`,
  );
  let list: unknown;
  try {
    list = JSON.parse(json);
  } catch (e) {
    throw new AgentFailure(
      "run-failed",
      `trtexec's --exportOutput file is not JSON: ${(e as Error).message}`,
    );
  }
  if (!Array.isArray(list))
    throw new AgentFailure("run-failed", "trtexec's --exportOutput file is not a list");
  return list.map((o: { name?: unknown; dimensions?: unknown; values?: unknown }) => {
    if (typeof o?.name !== "string" || typeof o.dimensions !== "string" || !Array.isArray(o.values)) {
      throw new AgentFailure(
        "run-failed",
        "trtexec's --exportOutput entries need name, dimensions and values",
      );
    }
    const dims = o.dimensions.split("x").map(Number);
    const values = Float32Array.from(o.values as (number | string)[], Number);
    const count = dims.reduce((a, b) => a * b, 1);
    if (dims.some((d) => !Number.isInteger(d) || d < 0) || count !== values.length) {
      throw new AgentFailure(
        "run-failed",
        `trtexec exported '${o.name}' as ${o.dimensions} with ${values.length} values`,
      );
    }
    return { name: o.name, dims, values };
  });
}

export function logTail(r: { stdout: string; stderr: string }): string {
  const lines = `${r.stdout}\n${r.stderr}`
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const errors = lines.filter((l) => /\[E\]|error|FAILED/i.test(l));
  return (errors.length ? errors : lines).slice(-4).join(" | ").slice(0, 1500);
}

/** Run a program (argv, no shell) to completion; its resident peak is sampled from /proc while it runs. */
export function runTool(
  file: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number; peakRss: number }> {
  return new Promise((resolveRun, reject) => {
    const t0 = Date.now();
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let peakRss = 0;
    const sample = (): void => {
      const st = child.pid ? readText(`/proc/${child.pid}/status`) : null;
      const m = st ? /VmHWM:\s+(\d+) kB/.exec(st) : null;
      if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
    };
    const poll = setInterval(sample, 20);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.once("error", (e) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new AgentFailure("trtexec-missing", `cannot start ${file}: ${e.message}`));
    });
    child.once("exit", () => sample());
    child.once("close", (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolveRun({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        ms: Date.now() - t0,
        peakRss,
      });
    });
  });
}
