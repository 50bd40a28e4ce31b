import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { ExportError } from "../../src/export/errors.js";
import { EXPORT_META_KEY, exportCheckpoint } from "../../src/export/export.js";
import { floatTwin } from "../../src/export/float.js";
import { loadQatSource, type QatSource } from "../../src/export/source.js";
import { checkTensorRt } from "../../src/export/tensorrt.js";
import { prependNormalization } from "../../src/nn/normalize.js";
import { zooModel } from "../../src/nn/zoo.js";
import { decodeModel, encodeModel, modelOf } from "../../src/onnx/codec.js";
import type { Graph } from "../../src/onnx/ir.js";
import { toFloat32 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { batchOf } from "../quant/fixtures.js";
import { qatCheckpoint, synthDataset, tempDir } from "./fixtures.js";

const MNIST = [1, 28, 28];
const CIFAR = [3, 32, 32];
const data = (shape: number[]) => synthDataset(shape, 160, 9);
const opts = (shape: number[]) => ({ data: data(shape), threads: 1 });

let dir: string;
const sources = new Map<string, QatSource>();
async function source(model: string, presetName: string): Promise<QatSource> {
  const key = `${model}/${presetName}`;
  if (!sources.has(key)) sources.set(key, loadQatSource(await qatCheckpoint(dir, model, presetName)));
  return sources.get(key)!;
}

beforeAll(() => {
  dir = tempDir();
});

/** Zero points of every Q/DQ node. */
function zeroPoints(g: Graph): { node: string; dtype: string; values: number[] }[] {
  return g.nodes
    .filter((n) => n.opType === "QuantizeLinear" || n.opType === "DequantizeLinear")
    .map((n) => {
      const z = g.initializers.get(n.inputs[2] ?? "");
      return { node: n.name, dtype: z?.dtype ?? "none", values: z ? Array.from(toFloat32(z)) : [] };
    });
}

describe("QDQ export (ort-cpu)", () => {
  it("mnist-cnn: int8 per-channel weights and int32 biases behind DQ, no training nodes, same I/O, dynamic batch", async () => {
    const src = await source("mnist-cnn", "ort-cpu");
    const r = await exportCheckpoint(src, opts(MNIST));
    const g = r.model.graph;
    const ops = new Set(g.nodes.map((n) => n.opType));
    for (const gone of ["Round", "Div", "BatchNormalization", "FakeQuantize", "Clip"])
      expect(ops.has(gone), gone).toBe(false);
    expect([...g.initializers.keys()].some((k) => k.startsWith("qat.state."))).toBe(false);
    const producers = g.producers();
    const convs = g.nodes.filter((n) => n.opType === "Conv" || n.opType === "Gemm");
    expect(convs.map((n) => n.name)).toEqual(["conv1", "conv2", "fc"]);
    for (const c of convs) {
      const w = producers.get(c.inputs[1]!)!;
      expect(w.opType).toBe("DequantizeLinear");
      const wt = g.initializers.get(w.inputs[0]!)!;
      expect(wt.dtype).toBe("int8");
      expect(g.initializers.get(w.inputs[1]!)!.dims).toEqual([wt.dims[0]]);
      expect(w.attrs.axis?.type === "int" ? w.attrs.axis.value : 1).toBe(0);
      const b = producers.get(c.inputs[2]!)!;
      expect(b.opType).toBe("DequantizeLinear");
      expect(g.initializers.get(b.inputs[0]!)!.dtype).toBe("int32");
      expect(producers.get(c.inputs[0]!)!.opType).toBe("DequantizeLinear");
    }
    expect(g.inputs.map((v) => [v.name, v.shape])).toEqual(src.graph.inputs.map((v) => [v.name, v.shape]));
    expect(g.outputs.map((v) => [v.name, v.shape])).toEqual(src.graph.outputs.map((v) => [v.name, v.shape]));
    expect(g.inputs[0]!.shape![0]).toBe("batch");
    // preprocessing is inside: the graph reads raw 0–255 pixels through Sub/Mul
    expect(g.nodes[0]!.opType).toBe("Sub");
    const meta = JSON.parse(r.model.metadata[EXPORT_META_KEY]!);
    expect(meta.qconfig.preset).toBe("ort-cpu");
    expect(meta.source.checkpoint).toBe(src.file);
    expect(meta.simulation.accuracy).toBe(r.parity.simulationAccuracy);
    expect(meta.quantization.filter((q: { kind: string }) => q.kind === "weight")).toHaveLength(3);
    expect(r.model.metadata["qat.checkpoint"]).toBeUndefined();
    expect(r.parity.passed).toBe(true);
    expect(r.parity.agreement).toBeGreaterThanOrEqual(0.999);
    expect(r.sizes.int8).toBeLessThan(r.sizes.float);
    // the written bytes run in ORT at batch 1 and 5 and agree with the in-memory model
    const s = await openSession(r.bytes, { threads: 1 });
    for (const n of [1, 5]) {
      const out = await run(s, { x: batchOf(MNIST, n, 4) });
      expect(out.logits!.dims).toEqual([n, 10]);
    }
    await s.release();
    expect(decodeModel(r.bytes).metadata[EXPORT_META_KEY]).toBe(r.model.metadata[EXPORT_META_KEY]);
  });

  it("resnet8: BN folded into the convs, parity with the simulation", async () => {
    const r = await exportCheckpoint(await source("resnet8", "ort-cpu"), opts(CIFAR));
    const ops = r.model.graph.nodes.map((n) => n.opType);
    expect(ops).not.toContain("BatchNormalization");
    expect(ops.filter((o) => o === "Conv")).toHaveLength(9);
    expect(r.parity.passed).toBe(true);
    expect(r.parity.exportAccuracy).toBeCloseTo(r.parity.simulationAccuracy, 2);
  });
});

describe("--opset", () => {
  it("13 and 21 relabel the same graph; ORT runs both in parity with the simulation", async () => {
    const src = await source("mnist-cnn", "ort-cpu");
    for (const opset of [13, 21]) {
      const r = await exportCheckpoint(src, { ...opts(MNIST), opset });
      expect(r.model.opsets[""]).toBe(opset);
      expect(r.model.irVersion).toBe(opset >= 21 ? 10 : 8);
      expect(r.parity.passed).toBe(true);
    }
    await expect(exportCheckpoint(src, { ...opts(MNIST), opset: 12 })).rejects.toThrow(/choose 13 to 21/);
  });
});

describe("QOperator export", () => {
  it("mnist-cnn: QLinearConv, integer MaxPool/Flatten and MatMulInteger + DequantizeLinear logits; no float Conv", async () => {
    const r = await exportCheckpoint(await source("mnist-cnn", "ort-cpu"), {
      ...opts(MNIST),
      format: "qoperator",
    });
    const ops = r.model.graph.nodes.map((n) => n.opType);
    expect(r.qoperator!.integerOps).toEqual({ QLinearConv: 2, MaxPool: 2, Flatten: 1, MatMulInteger: 1 });
    expect(r.qoperator!.float).toEqual([]);
    expect(ops).not.toContain("Conv");
    expect(ops).not.toContain("Gemm");
    // logits leave through a DequantizeLinear of the int32 sum: the board report can read its steps
    const last = r.model.graph.producers().get("logits")!;
    const dq = r.model.graph.producers().get(last.inputs[0]!)!;
    expect(dq.opType).toBe("DequantizeLinear");
    expect(r.parity.passed).toBe(true);
    expect(r.parity.outputs[0]!.accumulator).not.toBeNull();
  });

  it("resnet8: com.microsoft QLinearAdd and QLinearGlobalAveragePool load and run in ORT", async () => {
    const r = await exportCheckpoint(await source("resnet8", "ort-cpu"), {
      ...opts(CIFAR),
      format: "qoperator",
    });
    expect(r.qoperator!.integerOps).toMatchObject({
      QLinearConv: 9,
      QLinearAdd: 3,
      QLinearGlobalAveragePool: 1,
      MatMulInteger: 1,
    });
    expect(r.model.opsets["com.microsoft"]).toBe(1);
    expect(r.parity.passed).toBe(true);
    const s = await ort.InferenceSession.create(r.bytes);
    expect(s.inputNames).toEqual(["x"]);
    await s.release();
  });
});

describe("TensorRT profile", () => {
  for (const [model, shape] of [
    ["mnist-cnn", MNIST],
    ["resnet8", CIFAR],
  ] as const) {
    it(`${model}: every zero point int8 0, narrow-range int8 weights, float biases; passes the structural checks and loads in ORT`, async () => {
      const r = await exportCheckpoint(await source(model, "tensorrt"), {
        ...opts(shape),
        target: "tensorrt",
      });
      const g = r.model.graph;
      const zps = zeroPoints(g);
      expect(zps.length).toBeGreaterThan(0);
      for (const z of zps) {
        expect(z.dtype, z.node).toBe("int8");
        expect(
          z.values.every((v) => v === 0),
          z.node,
        ).toBe(true);
      }
      for (const n of g.nodes.filter((x) => x.opType === "DequantizeLinear")) {
        const w = g.initializers.get(n.inputs[0]!);
        if (w) {
          expect(w.dtype).toBe("int8");
          expect(Math.min(...(w.data as Int8Array))).toBeGreaterThanOrEqual(-127);
        }
      }
      expect(checkTensorRt(g, r.opset)).toEqual([]);
      expect(g.nodes.some((n) => n.domain !== "")).toBe(false);
      expect(r.parity.passed).toBe(true);
    });
  }

  it("the structural check finds a non-zero zero point and a Clip between Q and DQ", async () => {
    const r = await exportCheckpoint(await source("mnist-cnn", "tensorrt"), {
      ...opts(MNIST),
      target: "tensorrt",
    });
    const g = decodeModel(encodeModel(r.model)).graph;
    const q = g.nodes.find((n) => n.opType === "QuantizeLinear")!;
    g.initializers.set(q.inputs[2]!, { dtype: "int8", dims: [], data: Int8Array.of(3) });
    const issues = checkTensorRt(g, 17);
    expect(issues.some((i) => i.message.includes("zero point is not 0"))).toBe(true);
    const dq = g.nodes.find((n) => n.opType === "DequantizeLinear" && !g.initializers.has(n.inputs[0]!))!;
    const clipped = g.op("Clip", [dq.inputs[0]!], {}, { name: "between" });
    dq.inputs[0] = clipped;
    expect(
      checkTensorRt(g, 17).some((i) => i.node === dq.name && i.message.includes("not a QuantizeLinear")),
    ).toBe(true);
  });

  it("a checkpoint trained for ort-cpu (uint8 activations) is refused for TensorRT, naming a tensor", async () => {
    const src = await source("mnist-cnn", "ort-cpu");
    const err = await exportCheckpoint(src, { ...opts(MNIST), target: "tensorrt" }).catch((e) => e);
    expect(err).toBeInstanceOf(ExportError);
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/x_normalized: activation is quantized to uint8/);
    expect(err.message).toContain("--qat tensorrt");
  });

  it("QOperator with the TensorRT target is a usage error", async () => {
    const src = await source("mnist-cnn", "tensorrt");
    await expect(
      exportCheckpoint(src, { ...opts(MNIST), target: "tensorrt", format: "qoperator" }),
    ).rejects.toThrow(/--format qdq/);
  });
});

describe("4-bit weights", () => {
  it("w4a8: INT4 weight initializers at opset 21 (IR 10) that ORT runs, in parity with the simulation", async () => {
    const r = await exportCheckpoint(await source("mnist-cnn", "w4a8"), opts(MNIST));
    expect(r.opset).toBe(21);
    expect(r.model.irVersion).toBe(10);
    expect(r.int4Weights).toHaveLength(3);
    const back = decodeModel(r.bytes).graph;
    for (const name of r.int4Weights) {
      const t = back.initializers.get(name)!;
      expect(t.dtype).toBe("int4");
      expect(Math.min(...(t.data as Int8Array))).toBeGreaterThanOrEqual(-8);
      expect(Math.max(...(t.data as Int8Array))).toBeLessThanOrEqual(7);
    }
    expect(r.parity.passed).toBe(true);
    // two weights per byte: the INT4 model is smaller than the same export stored as int8
    const r8 = await exportCheckpoint(await source("mnist-cnn", "w4a8"), { ...opts(MNIST), opset: 17 });
    expect(r8.int4Weights).toEqual([]);
    expect(r8.warnings.some((w) => w.includes("stored as int8"))).toBe(true);
    expect(r.sizes.int8).toBeLessThan(r8.sizes.int8);
  });

  it("QOperator keeps 4-bit layers as QDQ around the float op (no integer kernel takes INT4)", async () => {
    const r = await exportCheckpoint(await source("mnist-cnn", "w4a8"), {
      ...opts(MNIST),
      format: "qoperator",
    });
    expect(r.qoperator!.float).toEqual(["conv1", "conv2", "fc"]);
    expect(r.parity.passed).toBe(true);
  });
});

describe("float twin (the size and latency reference)", () => {
  it("resnet8's twin has no Q/DQ and BN, and computes what the float model computes", async () => {
    const src = await source("resnet8", "ort-cpu");
    const twin = await floatTwin(src.graph);
    const ops = new Set(twin.nodes.map((n) => n.opType));
    for (const gone of ["QuantizeLinear", "DequantizeLinear", "BatchNormalization", "Round"])
      expect(ops.has(gone)).toBe(false);
    // the fixture's network before quantization: same seed, same normalisation
    const net = zooModel("resnet8", { seed: 3 });
    prependNormalization(net, [127, 127, 127], [70, 70, 70]);
    const x = batchOf(CIFAR, 4, 21);
    const a = await openSession(modelOf(twin), { threads: 1 });
    const b = await openSession(modelOf(net.eval), { threads: 1 });
    const ya = toFloat32((await run(a, { x })).logits!);
    const yb = toFloat32((await run(b, { x })).logits!);
    await a.release();
    await b.release();
    const scale = Math.max(...yb.map(Math.abs));
    for (let i = 0; i < ya.length; i++) expect(Math.abs(ya[i]! - yb[i]!)).toBeLessThan(1e-4 * scale + 1e-6);
  });
});
