/**
 * Independent check of `qat quantize` on mnist-8 (issue 15, must-show 1): the accuracy of ONNX models on the full
 * 10k MNIST test set, read straight from the IDX files with node:zlib and run one image at a time (the batch of 1
 * the original declares) in plain onnxruntime-node with its default session options — no qat code on the path.
 *
 *   npm run build && node dist/bench/mnist-int8-eval.js [--scale 0.00392156862745098] ../shared/data/mnist \
 *     ../shared/models/mnist-8.onnx out/model.int8.onnx …
 *
 * Prints one line per model (accuracy, correct/total, input/output names and shapes) and, last, one JSON object.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import * as ort from "onnxruntime-node";

function idx(file: string, magic: number): { dims: number[]; data: Uint8Array } {
  const b = gunzipSync(readFileSync(file));
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(0) !== magic) throw new Error(`${file}: not an IDX file with magic ${magic}`);
  const rank = magic & 0xff;
  const dims = Array.from({ length: rank }, (_, i) => v.getUint32(4 + 4 * i));
  return { dims, data: b.subarray(4 + 4 * rank) };
}

async function accuracy(model: string, images: Uint8Array, labels: Uint8Array, n: number, scale: number) {
  const s = await ort.InferenceSession.create(model);
  const input = s.inputNames[0]!;
  const output = s.outputNames[0]!;
  const x = new Float32Array(784);
  let correct = 0;
  for (let i = 0; i < n; i++) {
    // mnist-8 takes raw 0–255 pixels (scale 1); a PyTorch model trained on ToTensor() takes them ×1/255
    for (let k = 0; k < 784; k++) x[k] = Math.fround(images[i * 784 + k]! * scale);
    const y = (await s.run({ [input]: new ort.Tensor("float32", x, [1, 1, 28, 28]) }))[output]!;
    const d = y.data as Float32Array;
    let best = 0;
    for (let c = 1; c < d.length; c++) if (d[c]! > d[best]!) best = c;
    if (best === labels[i]) correct++;
  }
  const meta = { inputs: s.inputNames, outputs: s.outputNames };
  await s.release();
  return { model, accuracy: (100 * correct) / n, correct, total: n, ...meta };
}

const args = process.argv.slice(2);
const at = args.indexOf("--scale");
const scale = at >= 0 ? Number(args.splice(at, 2)[1]) : 1;
const [dir, ...models] = args;
if (!dir || models.length === 0 || !(scale > 0)) {
  process.stderr.write(
    "usage: node dist/bench/mnist-int8-eval.js [--scale s] <mnist dir> <model.onnx> [more.onnx …]\n",
  );
  process.exit(2);
}
const images = idx(join(dir, "t10k-images-idx3-ubyte.gz"), 0x803);
const labels = idx(join(dir, "t10k-labels-idx1-ubyte.gz"), 0x801);
const n = labels.dims[0]!;
const results = [];
for (const m of models) {
  const r = await accuracy(m, images.data, labels.data, n, scale);
  process.stdout.write(`${m}: ${r.accuracy.toFixed(2)}% (${r.correct}/${r.total})\n`);
  results.push(r);
}
process.stdout.write(`${JSON.stringify({ results })}\n`);
