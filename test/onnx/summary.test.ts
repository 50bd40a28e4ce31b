import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel, modelOf } from "../../src/onnx/codec.js";
import { Graph, type Model } from "../../src/onnx/ir.js";
import { formatSummary, summarize } from "../../src/onnx/summary.js";
import { tensor } from "../../src/onnx/tensor.js";
import { SHARED_MODELS } from "../helpers/shared-models.js";

const load = (file: string): Model => loadModel(join(SHARED_MODELS, file));

/** Parameters of a convolution with bias, and of a SqueezeNet Fire module (squeeze 1x1, expand 1x1 + 3x3). */
const conv = (cin: number, cout: number, k: number): number => cin * cout * k * k + cout;
const fire = (cin: number, s: number, e: number): number => conv(cin, s, 1) + conv(s, e, 1) + conv(s, e, 3);
/** Fire modules 2-9 and conv10, shared by both versions; only conv1 and fire2's input width differ. */
const body = (c1: number): number =>
  fire(c1, 16, 64) +
  fire(128, 16, 64) +
  fire(128, 32, 128) +
  fire(256, 32, 128) +
  fire(256, 48, 192) +
  fire(384, 48, 192) +
  fire(384, 64, 256) +
  fire(512, 64, 256) +
  conv(512, 1000, 1);

describe("summarize", () => {
  const squeezenet = load("squeezenet1.0-fp16.onnx");
  const s = summarize(squeezenet);

  it("squeezenet: producer, IR, opsets, the op histogram and its 26 Conv nodes", () => {
    expect(s.producer.name).toBe(squeezenet.producerName);
    expect(s.irVersion).toBe(3);
    expect(s.opsets).toEqual({ "": 7 });
    expect(s.ops.Conv).toBe(26);
    expect(s.ops.Conv).toBe(squeezenet.graph.nodes.filter((n) => n.opType === "Conv").length);
    expect(Object.values(s.ops).reduce((a, b) => a + b, 0)).toBe(squeezenet.graph.nodes.length);
    expect(s.nodes).toBe(squeezenet.graph.nodes.length);
    expect(Object.keys(s.ops)[0]).toMatch(/^(Conv|Relu)$/); // most frequent first
  });

  it("squeezenet: inputs leave out the initializers IR 3 also lists as inputs", () => {
    expect(squeezenet.graph.inputs.length).toBeGreaterThan(50);
    expect(s.inputs).toEqual([{ name: "data_0", dtype: "float16", shape: [1, 3, 224, 224] }]);
    expect(s.outputs).toEqual([{ name: "softmaxout_1", dtype: "float16", shape: [1, 1000, 1, 1] }]);
  });

  it("squeezenet: parameter count from the initializers' dims, checked against the published architectures", () => {
    let fromDims = 0;
    for (const t of squeezenet.graph.initializers.values()) fromDims += t.dims.reduce((a, b) => a * b, 1);
    expect(s.parameters.elements).toBe(fromDims);
    expect(s.parameters.byDtype).toEqual([
      {
        dtype: "float16",
        tensors: squeezenet.graph.initializers.size,
        elements: fromDims,
        bytes: 2 * fromDims,
      },
    ]);
    expect(s.constants.tensors).toBe(0);

    // SqueezeNet 1.0 (Iandola et al. 2016, Table 1): conv1 96 filters 7x7, so fire2 sees 96 channels.
    // This reproduces the published 1,248,424.
    const v10 = conv(3, 96, 7) + body(96);
    expect(v10).toBe(1_248_424);
    // SqueezeNet 1.1 (the authors' v1.1 release): conv1 64 filters 3x3, fire2 sees 64 channels.
    const v11 = conv(3, 64, 3) + body(64);
    // The shared file, named "1.0", holds the 1.1 architecture: conv1_w_0 is 64x3x3x3, not 96x3x7x7.
    expect(squeezenet.graph.initializers.get("conv1_w_0")!.dims).toEqual([64, 3, 3, 3]);
    expect(s.parameters.elements).toBe(v11);
    expect(s.parameters.elements).not.toBe(v10);
    expect(v10 - v11).toBe(12_928);
  });

  it("mnist-zoo (weights in Constant nodes) and mnist-8 (weights in initializers) report the same parameters", () => {
    const zoo = summarize(load("mnist-zoo-2018-opset1.onnx"));
    const m8model = load("mnist-8.onnx");
    const m8 = summarize(m8model);
    expect(zoo.ops.Constant).toBe(6);
    let floats = 0;
    let ints = 0;
    for (const t of m8model.graph.initializers.values()) {
      const n = t.dims.reduce((a, b) => a * b, 1);
      if (t.dtype === "float32") floats += n;
      else ints += n;
    }
    expect(m8.parameters.elements).toBe(floats);
    expect(m8.parameters.bytes).toBe(4 * floats);
    // Conv 1->8 5x5 + bias [8,1,1], Conv 8->16 5x5 + bias [16,1,1], MatMul 256x10 + bias 10 (CNTK, opset 8)
    expect(floats).toBe(8 * 25 + 8 + 16 * 8 * 25 + 16 + 256 * 10 + 10);
    expect(zoo.parameters.elements).toBe(floats);
    // the int64 shape constants of the two Reshapes are listed apart from the parameters
    expect(m8.constants.byDtype.map((g) => [g.dtype, g.elements])).toEqual([["int64", ints]]);
    expect(ints).toBe(4);
    // opset 1's Reshape takes its shape as an attribute, so the zoo model has no int64 constants at all
    expect(zoo.constants.elements).toBe(0);
    expect(zoo.ops.Reshape).toBe(2);
    expect(m8.inputs).toEqual([{ name: "Input3", dtype: "float32", shape: [1, 1, 28, 28] }]);
  });

  it("counts ops and tensors inside subgraphs, qualifies other domains and lists untrainable nodes", () => {
    const g = new Graph();
    g.inputs.push(
      { name: "x", dtype: "float32", shape: ["batch", 4] },
      { name: "c", dtype: "bool", shape: [] },
    );
    const then = new Graph();
    then.outputs.push({ name: then.op("Relu", ["x"], {}, { output: "t" }) });
    const other = new Graph();
    const w = other.constant("w", tensor("float32", [4], [1, 2, 3, 4]));
    other.outputs.push({ name: other.op("Mul", ["x", w], {}, { output: "e" }) });
    const [y] = g.add(
      "If",
      ["c"],
      { then_branch: then, else_branch: other },
      { outputs: ["y"], name: "branch" },
    );
    const z = g.op("FusedGemm", [y!], {}, { domain: "com.microsoft", name: "fused" });
    const k = g.op("Constant", [], { value: tensor("int64", [2], [1, -1]) });
    g.outputs.push({ name: g.op("Reshape", [z, k]) });
    const sum = summarize(modelOf(g, { "": 17, "com.microsoft": 1 }), {
      trainable: (n) => !["If", "FusedGemm"].includes(n.opType),
    });
    expect(sum.ops).toEqual({
      If: 1,
      Relu: 1,
      Mul: 1,
      "com.microsoft:FusedGemm": 1,
      Constant: 1,
      Reshape: 1,
    });
    expect(sum.nodes).toBe(6);
    expect(sum.subgraphs).toBe(2);
    expect(sum.parameters.elements).toBe(4);
    expect(sum.constants.byDtype).toEqual([{ dtype: "int64", tensors: 1, elements: 2, bytes: 16 }]);
    expect(sum.untrainable).toEqual([
      { name: "branch", op: "If" },
      { name: "fused", op: "com.microsoft:FusedGemm" },
    ]);
    expect(sum.inputs[0]!.shape).toEqual(["batch", 4]);
    expect(summarize(modelOf(g)).untrainable).toBeUndefined();
  });
});

describe("formatSummary", () => {
  it("prints an aligned, readable table", () => {
    const model = load("squeezenet1.0-fp16.onnx");
    const text = formatSummary(summarize(model, { trainable: (n) => n.opType !== "Dropout" }));
    const lines = text.split("\n");
    expect(text).toContain("IR version  3");
    expect(text).toContain("opsets      ai.onnx 7");
    expect(lines).toContain("  data_0  float16  [1, 3, 224, 224]");
    expect(text).toMatch(/^parameters: 1,235,496 in 52 tensors, 2\.36 MiB$/m);
    expect(text).toContain("other constants: none");
    expect(text).toContain("cannot train through (1 node)");
    // the op table: names left-aligned, counts right-aligned in one column
    const start = lines.findIndex((l) => l.startsWith("ops: "));
    const rows = lines.slice(start + 1, start + 1 + Object.keys(summarize(model).ops).length);
    expect(rows.find((r) => r.trim().startsWith("Conv"))).toMatch(/^ {2}Conv +26$/);
    expect(new Set(rows.map((r) => r.length)).size).toBe(1);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(110);
  });
});
