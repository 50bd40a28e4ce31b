/**
 * Independent check of an int8 model from `qat quantize` without labels (issue 15, must-show 3): the original float
 * ONNX file and the int8 file, each run in plain onnxruntime-node (default session options, one sample at a time as
 * their declared batch of 1 says) on the held-out crops `qat quantize` measured with, and per output the SQNR (dB)
 * and cosine of int8 against float. Only the crops come from qat's data code (same split, seed and preprocessing);
 * no qat code runs the models.
 *
 *   npm run build && node dist/bench/int8-fidelity.js FLOAT.onnx INT8.onnx [--data ../shared/data/images]
 *     [--scale 0.00784313725490196] [--mean 1] [--samples 1000]
 *
 * Prints one line per output and, last, one JSON object.
 */
import * as ort from "onnxruntime-node";
import { importModel } from "../src/nn/import/index.js";
import { openQuantizeData } from "../src/pipeline/quantize/data.js";
import { evalBatches } from "../src/train/evaluate.js";

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};

async function main(): Promise<void> {
  const [floatFile, int8File] = process.argv
    .slice(2)
    .filter((a, i, all) => !a.startsWith("--") && !all[i - 1]?.startsWith("--"));
  if (!floatFile || !int8File) throw new Error("usage: int8-fidelity.js FLOAT.onnx INT8.onnx [--data DIR]");
  const { net, report } = importModel(floatFile, { outputs: "all", seed: 0 });
  const input = { name: net.input, sampleShape: net.inputShape, layout: report.input.layout };
  const data = await openQuantizeData(arg("data", "../shared/data/images"), input, {
    preprocess: { scale: Number(arg("scale", "0.00784313725490196")), mean: [Number(arg("mean", "1"))] },
    evalSamples: Number(arg("samples", "1000")),
    calibrationSamples: 1024,
    seed: 0,
  });
  const [f, q] = [await ort.InferenceSession.create(floatFile), await ort.InferenceSession.create(int8File)];
  const acc = new Map<string, { ss: number; nn: number; dot: number; qq: number }>();
  let samples = 0;
  const per = net.inputShape.reduce((a, b) => a * b, 1);
  for await (const b of evalBatches(data.heldOut, { batchSize: 64 })) {
    const x = b.x.data as Float32Array;
    for (let i = 0; i < b.take; i++) {
      const t = new ort.Tensor("float32", x.slice(i * per, (i + 1) * per), [1, ...net.inputShape]);
      const [fr, qr] = [await f.run({ [f.inputNames[0]!]: t }), await q.run({ [q.inputNames[0]!]: t })];
      for (const name of f.outputNames) {
        const a = fr[name]!.data as Float32Array;
        const c = qr[name]!.data as Float32Array;
        const s = acc.get(name) ?? { ss: 0, nn: 0, dot: 0, qq: 0 };
        for (let k = 0; k < a.length; k++) {
          s.ss += a[k]! * a[k]!;
          s.nn += (c[k]! - a[k]!) ** 2;
          s.dot += a[k]! * c[k]!;
          s.qq += c[k]! * c[k]!;
        }
        acc.set(name, s);
      }
      samples++;
    }
  }
  const outputs: Record<string, { sqnrDb: number; cosine: number }> = {};
  for (const [name, s] of acc) {
    outputs[name] = { sqnrDb: 10 * Math.log10(s.ss / s.nn), cosine: s.dot / Math.sqrt(s.ss * s.qq) };
    console.log(
      `${name}: SQNR ${outputs[name]!.sqnrDb.toFixed(2)} dB, cosine ${outputs[name]!.cosine.toFixed(5)}`,
    );
  }
  console.log(JSON.stringify({ float: floatFile, int8: int8File, samples, outputs }));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
