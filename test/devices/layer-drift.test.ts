/**
 * Per-layer drift attribution on a model where host and board really differ: full-range int8 weights in conv2.
 * The board is an emulated x86-64 PC without VNNI (the host's x86-64 Node under qemu-user, CPU model Haswell), run
 * with onnxruntime's default session options as the agent runs it: its AVX2 u8·s8 kernels sum pairs of products in
 * 16 bits and saturate. The host (session.x64quantprecision = 1, and AVX-512 VNNI here) does not; nor does the
 * emulated Raspberry Pi 4. Root-only (mount namespaces), like the other emulated-board tests.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allProbes, layerOf, probeList, stepOf } from "../../devices/layers.js";
import { setupDevice } from "../../devices/setup.js";
import type { Transport } from "../../devices/transport/channel.js";
import { emulatedTransport, ensureEmulator } from "../../devices/transport/emulator.js";
import { validateModel } from "../../devices/validate.js";
import { decodeModel } from "../../src/onnx/codec.js";
import { OnnxError } from "../../src/onnx/errors.js";
import { saturatingNet, saturatingSet } from "./models.js";

const dir = mkdtempSync(join(tmpdir(), "qat-layer-drift-"));
const full = saturatingNet(true);
const clean = saturatingNet(false);
const set = saturatingSet(48);
let haswell: Transport;
let pi: Transport;

beforeAll(async () => {
  const x64 = await ensureEmulator({ board: "x64-haswell", root: join(dir, "x64-haswell") });
  haswell = emulatedTransport(x64);
  const s = await setupDevice(haswell);
  expect(s.facts.arch).toBe("x64");
  expect(s.detection.profile.id).toBe("generic-x64");
  expect(s.detection.cpuFeatures).toContain("avx2");
  expect(s.detection.cpuFeatures).not.toContain("avx512_vnni");
  expect(s.detection.warnings.join(" ")).toMatch(/no VNNI: .*saturate/);
  const arm = await ensureEmulator({ root: join(dir, "rpi4") });
  pi = emulatedTransport(arm);
  await setupDevice(pi);
}, 600_000);

afterAll(() => {
  haswell?.abort();
  pi?.abort();
  rmSync(dir, { recursive: true, force: true });
});

describe("which tensors, which layer, which step", () => {
  const g = decodeModel(full).graph;

  it("`all` is every activation QuantizeLinear output in graph order; a layer is its fused node group", () => {
    expect(allProbes(g)).toEqual(["x.q", "relu1_out.q", "relu2_out.q", "flat.q"]);
    expect(layerOf(g, "relu2_out.q")).toMatchObject({ node: "conv2", op: "Conv", ops: ["Conv", "Relu"] });
    expect(layerOf(g, "relu2_out.dq")).toMatchObject({ node: "conv2", nodes: ["conv2", "relu2"] });
    expect(layerOf(g, "flat.q")).toMatchObject({ node: "flatten", op: "Flatten", ops: ["Flatten"] });
    expect(layerOf(g, "x.q")).toMatchObject({ node: "x.quantize", op: "QuantizeLinear" });
    expect(layerOf(g, "logits")).toMatchObject({ node: "fc", op: "Gemm" });
    expect(stepOf(g, "relu2_out.q")).toMatchObject({ kind: "integer" });
    expect(stepOf(g, "relu2_out.dq").kind).toBe("dequantize");
    expect(stepOf(g, "relu2_out.dq").scale[0]).toBeCloseTo(8 / 255, 7);
    expect(stepOf(g, "logits").kind).toBe("accumulator");
    expect(stepOf(g, "conv2_out").kind).toBe("accumulator");
  });

  it("takes value or node names (a node stands for its layer's quantized output), and names a missing one", () => {
    expect(() => probeList(g, ["relu2_out.q", "nope"])).toThrow(OnnxError);
    expect(() => probeList(g, ["nope"])).toThrow(
      /no node or value is named 'nope' \(quantized activations: x\.q,/,
    );
    expect(probeList(g, ["flat.q", "all"])).toEqual(["flat.q", "x.q", "relu1_out.q", "relu2_out.q"]);
    expect(probeList(g, ["conv2", "relu1", "fc"])).toEqual(["relu2_out.q", "relu1_out.q", "logits"]);
  });
});

describe("first diverging layer: host (exact) vs an emulated x86-64 board without VNNI", () => {
  it("names conv2 (Conv+Relu), the layer with full-range int8 weights", async () => {
    const r = await validateModel(full, set, haswell, { batchSize: 16, layers: "all" });
    expect(r.board).toBe("generic-x64");
    expect(r.layers.map((l) => l.name)).toEqual(["x.q", "relu1_out.q", "relu2_out.q", "flat.q"]);
    const [xq, a1, a2, flat] = r.layers;
    expect(xq!.maxSteps).toBe(0);
    expect(a1!.maxSteps).toBe(0); // conv1's weights stay below ±64: no pair of products can saturate
    expect(a2!.stepKind).toBe("integer");
    expect(a2!.maxSteps).toBeGreaterThan(1);
    expect(a2!.diverged).toBe(true);
    expect(flat!.diverged).toBe(true); // downstream of conv2
    expect(r.firstDivergence).toMatchObject({
      tensor: "relu2_out.q",
      node: "conv2",
      op: "Conv",
      ops: ["Conv", "Relu"],
      stepKind: "integer",
      threshold: 1,
    });
    expect(r.output.maxAbs).toBeGreaterThan(0);
    // the probes did not change what ORT computes on either side
    expect(r.probe).toEqual({ host: 0, board: 0 });
    console.log(
      `x64-haswell vs host: first divergence ${r.firstDivergence!.node} (${r.firstDivergence!.ops.join("+")}) → ` +
        `${r.firstDivergence!.tensor}: ${r.firstDivergence!.maxSteps} steps on ${(100 * r.firstDivergence!.changed).toFixed(1)}% of values; ` +
        `per layer ${r.layers.map((l) => `${l.name}=${l.maxSteps}`).join(", ")}; logits max |Δ| ${r.output.maxAbs.toFixed(3)} ` +
        `(${r.output.maxSteps!.toFixed(0)} accumulator steps), agreement ${(100 * r.agreement).toFixed(1)}%`,
    );
  });

  it("a threshold above conv2's steps moves the divergence to the graph output", async () => {
    const r = await validateModel(full, set, haswell, {
      batchSize: 16,
      layers: ["relu2_out.q", "flat.q"],
      layerThreshold: 1000,
    });
    expect(r.layers.map((l) => [l.name, l.diverged])).toEqual([
      ["relu2_out.q", false],
      ["flat.q", false],
    ]);
    // the logits differ by thousands of int32-accumulator steps
    expect(r.firstDivergence).toMatchObject({
      tensor: "logits",
      node: "fc",
      op: "Gemm",
      stepKind: "accumulator",
    });
  });

  it("the same layers with weights within ±64 report no divergence", async () => {
    const r = await validateModel(clean, set, haswell, { batchSize: 16, layers: "all" });
    expect(r.firstDivergence).toBeNull();
    expect(r.layers.every((l) => l.maxSteps === 0 && !l.diverged)).toBe(true);
    expect(r.output.maxAbs).toBe(0);
    expect(r.agreement).toBe(1);
  });

  it("ARM (the emulated Raspberry Pi 4) does not saturate: the full-range model does not diverge there", async () => {
    const r = await validateModel(full, saturatingSet(16), pi, { batchSize: 16, layers: "all" });
    expect(r.board).toBe("raspberry-pi-4");
    expect(r.firstDivergence).toBeNull();
    expect(r.layers.every((l) => (l.maxSteps ?? 0) <= 1)).toBe(true);
  });
});
