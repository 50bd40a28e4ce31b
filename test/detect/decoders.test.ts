/**
 * Imported detector heads: MediaPipe-style anchors (BlazeFace's 896), the SSD and Ultralytics layouts decoding one
 * detector's raw predictions to the same detections through ONNX Runtime, and BlazeFace finding the astronaut's face
 * with the spec printed in docs/detection.md.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeImage } from "../../src/data/image.js";
import { generateAnchors } from "../../src/detect/anchors.js";
import { iou } from "../../src/detect/boxes.js";
import { decodeHead, type HeadOutputs } from "../../src/detect/decode-head.js";
import { detectInput } from "../../src/detect/detect-input.js";
import { inferDetectSpec, parseDetectSpec } from "../../src/detect/head-spec.js";
import { ssdCandidates } from "../../src/detect/ssd.js";
import { weightedNms } from "../../src/detect/weighted-nms.js";
import { encodeModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, toFloat32 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { Rng } from "../../src/util/rng.js";
import { blazefaceSpecJson } from "./blazeface-spec.js";

const SHARED = new URL("../../../shared/", import.meta.url).pathname;

describe("MediaPipe-style anchors", () => {
  it("BlazeFace front: 512 stride-8 anchors (2 a cell) then 384 stride-16 (6 a cell), 896 in all", () => {
    const a = generateAnchors({
      inputWidth: 128,
      inputHeight: 128,
      strides: [8, 16, 16, 16],
      minScale: 0.1484375,
      maxScale: 0.75,
      aspectRatios: [1],
      interpolatedScaleAspectRatio: 1,
      offsetX: 0.5,
      offsetY: 0.5,
      fixedAnchorSize: true,
      reduceBoxesInLowestLayer: false,
    });
    expect(a.length).toBe(896);
    // first cell of the 16×16 map, twice; first cell of the 8×8 map six times
    expect(a[0]).toEqual({ cx: 0.5 / 16, cy: 0.5 / 16, w: 1, h: 1 });
    expect(a[1]).toEqual(a[0]);
    expect(a[2]).toEqual({ cx: 1.5 / 16, cy: 0.5 / 16, w: 1, h: 1 });
    expect(a[511]).toEqual({ cx: 15.5 / 16, cy: 15.5 / 16, w: 1, h: 1 });
    for (let k = 512; k < 518; k++) expect(a[k]).toEqual({ cx: 0.5 / 8, cy: 0.5 / 8, w: 1, h: 1 });
    expect(a[518]).toEqual({ cx: 1.5 / 8, cy: 0.5 / 8, w: 1, h: 1 });
    expect(a[895]).toEqual({ cx: 7.5 / 8, cy: 7.5 / 8, w: 1, h: 1 });
  });

  it("sizes from scales and ratios, worked by hand (2 layers, ratios 1 and 4, interpolated)", () => {
    const a = generateAnchors({
      inputWidth: 8,
      inputHeight: 8,
      strides: [8, 8],
      minScale: 0.2,
      maxScale: 0.6,
      aspectRatios: [1, 4],
      interpolatedScaleAspectRatio: 1,
      offsetX: 0.5,
      offsetY: 0.5,
      fixedAnchorSize: false,
      reduceBoxesInLowestLayer: false,
    });
    // layer 0: scale 0.2 at ratio 1 (0.2×0.2), ratio 4 (w 0.4, h 0.1), interpolated √(0.2·0.6); layer 1: 0.6, then
    // ratio 4 (1.2 × 0.3), interpolated √(0.6·1)
    const sizes = a.map((x) => [x.w, x.h]);
    const r = Math.sqrt(0.12);
    const s = Math.sqrt(0.6);
    const expected = [
      [0.2, 0.2],
      [0.4, 0.1],
      [r, r],
      [0.6, 0.6],
      [1.2, 0.3],
      [s, s],
    ];
    expect(sizes.length).toBe(6);
    sizes.forEach((v, i) => {
      expect(v[0]).toBeCloseTo(expected[i]![0]!, 12);
      expect(v[1]).toBeCloseTo(expected[i]![1]!, 12);
    });
  });
});

describe("SSD layout options and weighted NMS, by hand", () => {
  it("TensorFlow's form: background column 0, y1 x1 y2 x2 normalised, logits", () => {
    // two candidates, classes [background, cat, dog]; input 200 wide × 100 high
    const scores = [5, 0, -5, /**/ -5, 0, 2]; // 1st: background wins but is skipped → cat (logit 0 → 0.5)
    const boxes = [0.1, 0.2, 0.5, 0.6, /**/ 0, 0, 1, 1];
    const d = ssdCandidates(scores, [1, 2, 3], boxes, [1, 2, 4], {
      layout: { boxFormat: "yxyx", normalized: true, background: 0, sigmoid: true },
      threshold: 0.3,
      width: 200,
      height: 100,
    });
    expect(d).toHaveLength(2);
    expect(d[0]).toEqual({ cls: 0, score: 0.5, box: { x1: 40, y1: 10, x2: 120, y2: 50 } });
    expect(d[1]!.cls).toBe(1); // dog, column 2 → class 1
    expect(d[1]!.score).toBeCloseTo(1 / (1 + Math.exp(-2)), 12);
    expect(d[1]!.box).toEqual({ x1: 0, y1: 0, x2: 200, y2: 100 });
  });

  it("weighted NMS averages a cluster by score and keeps the top score", () => {
    // boxes [0,10] and [2,12] (IoU 2/3 > 0.3), scores 0.9 and 0.6: x1 = (0·0.9 + 2·0.6) / 1.5 = 0.8
    const out = weightedNms(
      [
        { cls: 0, score: 0.6, box: { x1: 2, y1: 0, x2: 12, y2: 10 } },
        { cls: 0, score: 0.9, box: { x1: 0, y1: 0, x2: 10, y2: 10 } },
        { cls: 0, score: 0.8, box: { x1: 50, y1: 50, x2: 60, y2: 60 } },
      ],
      { iouThreshold: 0.3 },
    );
    expect(out.map((d) => d.score)).toEqual([0.9, 0.8]);
    expect(out[0]!.box.x1).toBeCloseTo(0.8, 12);
    expect(out[0]!.box.x2).toBeCloseTo(10.8, 12);
    expect(out[1]!.box).toEqual({ x1: 50, y1: 50, x2: 60, y2: 60 });
  });
});

describe("a spec file: errors name the file and the field", () => {
  it("a bad field", () => {
    expect(() => parseDetectSpec({ format: "anchors", input: { layout: "nhwc" } }, "s.json")).toThrow(
      /^s\.json: input\.width: must be a number ≥ 1, got undefined$/,
    );
    expect(() => parseDetectSpec({ ...(blazefaceSpecJson() as object), format: "yolo9" }, "b.json")).toThrow(
      'b.json: format: must be one of ultralytics, ssd, anchors, centernet, got "yolo9"',
    );
  });

  it("anchors that do not match the model's outputs", () => {
    const json = blazefaceSpecJson() as { anchors: { strides: number[] } };
    const spec = parseDetectSpec({ ...json, anchors: { ...json.anchors, strides: [8, 16, 16] } }, "b.json");
    const outputs: HeadOutputs = {
      "Identity:0": { data: new Float32Array(512), dims: [1, 512, 1] },
      "Identity_1:0": { data: new Float32Array(384), dims: [1, 384, 1] },
      "Identity_2:0": { data: new Float32Array(512 * 16), dims: [1, 512, 16] },
      "Identity_3:0": { data: new Float32Array(384 * 16), dims: [1, 384, 16] },
    };
    expect(() => decodeHead(outputs, spec)).toThrow(
      "the anchor spec makes 768 anchors, the model gives 896 scores and 896 boxes; check strides and aspect ratios",
    );
  });
});

/**
 * A detector whose raw predictions P [1, N, 4+nc] (cx cy w h in pixels, then class scores) come from a Conv of the
 * input, exported twice over: the Ultralytics layout (P transposed to [1, 4+nc, N]) and the SSD layout (scores
 * P[..., 4:], boxes as corners x1 y1 x2 y2 computed in the graph).
 */
function twoLayoutDetector(nc: number, side: number): Uint8Array {
  const g = new Graph();
  const n = side * side;
  g.inputs.push({ name: "images", dtype: "float32", shape: [1, 3, side * 8, side * 8] });
  const w = new Rng(7).uniformArray((4 + nc) * 3 * 64, -0.1, 0.1);
  // one 8×8 stride-8 convolution: a prediction per 8×8 cell of the 64×64 image
  const conv = g.op("Conv", ["images", g.constant("w", f32([4 + nc, 3, 8, 8], w))], { strides: [8, 8] });
  // [1, 4+nc, side, side] → [1, 4+nc, N]; boxes: centre = cell centre + tanh offset, size = 2..10 px; scores sigmoid
  const flat = g.op("Reshape", [
    conv,
    g.constant("s", { dtype: "int64", dims: [3], data: BigInt64Array.from([1n, BigInt(4 + nc), BigInt(n)]) }),
  ]);
  const split = g.add(
    "Split",
    [
      flat,
      g.constant("parts", { dtype: "int64", dims: [3], data: BigInt64Array.from([2n, 2n, BigInt(nc)]) }),
    ],
    { axis: 1 },
    { outputs: 3 },
  );
  const grid = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    grid[i] = (i % side) * 8 + 4;
    grid[n + i] = Math.floor(i / side) * 8 + 4;
  }
  const xy = g.op("Add", [
    g.op("Mul", [g.op("Tanh", [split[0]!]), g.constant("k", f32([], [6]))]),
    g.constant("grid", f32([1, 2, n], grid)),
  ]);
  const wh = g.op("Add", [
    g.op("Mul", [g.op("Sigmoid", [split[1]!]), g.constant("k8", f32([], [8]))]),
    g.constant("two", f32([], [2])),
  ]);
  const cls = g.op("Sigmoid", [split[2]!]);
  g.op("Concat", [xy, wh, cls], { axis: 1 }, { output: "output0" });
  const half = g.op("Mul", [wh, g.constant("h", f32([], [0.5]))]);
  const corners = g.op("Concat", [g.op("Sub", [xy, half]), g.op("Add", [xy, half])], { axis: 1 });
  g.op("Transpose", [corners], { perm: [0, 2, 1] }, { output: "boxes" });
  g.op("Transpose", [cls], { perm: [0, 2, 1] }, { output: "scores" });
  g.outputs.push(
    { name: "output0", dtype: "float32", shape: [1, 4 + nc, n] },
    { name: "scores", dtype: "float32", shape: [1, n, nc] },
    { name: "boxes", dtype: "float32", shape: [1, n, 4] },
  );
  return encodeModel(modelOf(g));
}

describe("one detector exported in the Ultralytics and SSD layouts", () => {
  it("decodes to the same detections through the inferred specs (ONNX Runtime outputs)", async () => {
    const side = 8;
    const nc = 3;
    const bytes = twoLayoutDetector(nc, side);
    const session = await openSession(bytes);
    const rng = new Rng(11);
    const names = ["a", "b", "c"];
    let total = 0;
    for (let trial = 0; trial < 4; trial++) {
      const x = rng.uniformArray(3 * 64 * 64, -2, 2);
      const r = await run(session, { images: f32([1, 3, 64, 64], x) });
      const outs = (ks: string[]): HeadOutputs =>
        Object.fromEntries(ks.map((k) => [k, { data: toFloat32(r[k]!), dims: r[k]!.dims }]));
      const io = (ks: string[]) => ({
        inputs: [{ name: "images", shape: [1, 3, side * 8, side * 8] }],
        outputs: ks.map((k) => ({ name: k, shape: r[k]!.dims })),
      });
      const u = inferDetectSpec(io(["output0"]), names)!;
      const s = inferDetectSpec(io(["scores", "boxes"]), names)!;
      expect(u.format).toBe("ultralytics");
      expect(s.format).toBe("ssd");
      for (const spec of [u, s]) spec.scoreThreshold = 0.3;
      const a = decodeHead(outs(["output0"]), u);
      const b = decodeHead(outs(["scores", "boxes"]), s);
      expect(a.length).toBeGreaterThan(0);
      expect(b.map((d) => [d.cls, d.score])).toEqual(a.map((d) => [d.cls, d.score]));
      for (const [i, d] of b.entries()) expect(iou(d.box, a[i]!.box)).toBeGreaterThan(1 - 1e-5);
      total += a.length;
    }
    await session.release();
    console.log(`Ultralytics and SSD layouts of one detector: ${total} detections over 4 inputs, identical`);
  });
});

describe("BlazeFace (MediaPipe front, 128×128) with the docs' anchor spec", () => {
  it("finds the astronaut's face", async () => {
    const spec = parseDetectSpec(blazefaceSpecJson(), "docs/detection.md");
    const path = `${SHARED}data/images/astronaut.png`;
    const img = decodeImage(readFileSync(path), path);
    const { data, info } = detectInput(img, spec.input);
    const session = await openSession(`${SHARED}models/blazeface-front-128.onnx`);
    const r = await run(session, { "input:0": f32([1, 128, 128, 3], data) });
    await session.release();
    const outs: HeadOutputs = Object.fromEntries(
      Object.entries(r).map(([k, t]) => [k, { data: toFloat32(t), dims: t.dims }]),
    );
    const faces = decodeHead(outs, spec, info);
    const f = faces[0]!;
    const b = f.box;
    console.log(
      `BlazeFace on astronaut.png (${img.width}×${img.height}): ${faces.length} face(s); score ${f.score.toFixed(3)}, box x1 ${b.x1.toFixed(1)} y1 ${b.y1.toFixed(1)} x2 ${b.x2.toFixed(1)} y2 ${b.y2.toFixed(1)}; keypoints ${f.keypoints!.map((k) => `(${k.x.toFixed(0)},${k.y.toFixed(0)})`).join(" ")}`,
    );
    expect(faces.length).toBe(1);
    expect(f.score).toBeGreaterThan(0.75);
    // her face (hair line to chin, cheek to cheek) is roughly x 170–270, y 60–190 of the 512×512 photograph
    expect(iou(b, { x1: 170, y1: 60, x2: 270, y2: 190 })).toBeGreaterThan(0.5);
    // eyes above the nose, nose above the mouth
    const [re, le, nose, mouth] = f.keypoints!;
    expect(Math.max(re!.y, le!.y)).toBeLessThan(nose!.y);
    expect(nose!.y).toBeLessThan(mouth!.y);
  });
});
