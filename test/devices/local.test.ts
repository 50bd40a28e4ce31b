import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AgentClient } from "../../devices/client.js";
import { deployModel, listModels, rollback } from "../../devices/deploy.js";
import { AgentNotInstalledError, RemoteError } from "../../devices/errors.js";
import { authenticate } from "../../devices/session-auth.js";
import { agentPath, connectAgent, installKey, setupDevice } from "../../devices/setup.js";
import { LocalTransport } from "../../devices/transport/local.js";
import { validateModel } from "../../devices/validate.js";
import { encodeModel, loadModel, modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, tensor } from "../../src/onnx/tensor.js";
import { MNIST8, mnistTest } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "qat-local-"));
const home = join(dir, "agent-home");
const t = new LocalTransport({ home });
const mnist = readFileSync(MNIST8);
// a second, different model: mnist-8 with another producer name (same graph, other bytes)
const m2 = loadModel(MNIST8);
m2.producerName = "qat-test-variant";
const mnistB = encodeModel(m2);
const m3 = loadModel(MNIST8);
m3.producerName = "qat-test-variant-3";
const mnistC = encodeModel(m3);

afterAll(async () => {
  t.abort();
  rmSync(dir, { recursive: true, force: true });
});

describe("local agent end to end", () => {
  it("refuses to run before setup, with a hint", async () => {
    await expect(connectAgent(t)).rejects.toBeInstanceOf(AgentNotInstalledError);
  });

  it("sets up once, and a second setup with the same version does nothing", async () => {
    const first = await setupDevice(t);
    expect(first.changed).toBe(true);
    expect(first.filesSent).toBeGreaterThan(5);
    expect(first.installed.key).toBe(await installKey());
    expect(first.runtime.node ?? Object.values(first.runtime)[0]).toBeTruthy();
    expect(existsSync(join(home, "installed.json"))).toBe(true);
    expect(existsSync(agentPath(t, first.key))).toBe(true);
    // the x64 binaries only, not the arm64 ones
    const bins = readdirSync(
      join(home, "install", first.key, "node_modules/onnxruntime-node/bin/napi-v6/linux"),
    );
    expect(bins).toEqual([process.arch]);
    const again = await setupDevice(t);
    expect(again.changed).toBe(false);
    expect(again.filesSent).toBe(0);
    expect(again.detection.profile.id).toBe(process.arch === "x64" ? "generic-x64" : "generic-arm64");
  });

  it("deploys into the content-addressed store, keeps the last N, rolls back", async () => {
    const a = await deployModel(mnist, t, { keep: 2, name: "mnist-8.onnx" });
    expect(a.uploaded).toBe(true);
    expect(a.previous).toBeNull();
    expect(readFileSync(join(home, "models", a.sha256, "model.onnx")).equals(mnist)).toBe(true);
    expect(readlinkSync(join(home, "current"))).toBe(join("models", a.sha256));
    const again = await deployModel(mnist, t, { keep: 2 });
    expect(again.uploaded).toBe(false);
    const b = await deployModel(mnistB, t, { keep: 2 });
    expect(b.previous).toBe(a.sha256);
    const c = await deployModel(mnistC, t, { keep: 2 });
    expect(c.removed).toEqual([a.sha256]);
    expect(existsSync(join(home, "models", a.sha256))).toBe(false);
    const list = await listModels(t);
    expect(list.current).toBe(c.sha256);
    expect(list.history).toEqual([b.sha256, c.sha256]);
    // current and history live in one file, replaced whole; the `current` link follows it
    const state = JSON.parse(readFileSync(join(home, "state.json"), "utf8")) as Record<string, unknown>;
    expect(state).toMatchObject({ format: 1, current: c.sha256, history: [b.sha256, c.sha256] });
    expect(existsSync(join(home, "history.json"))).toBe(false);
    expect(list.models.map((m) => m.sha256).sort()).toEqual([b.sha256, c.sha256].sort());
    const rb = await rollback(t);
    expect(rb).toMatchObject({ from: c.sha256, to: b.sha256 });
    expect(readlinkSync(join(home, "current"))).toBe(join("models", b.sha256));
    await expect(rollback(t)).rejects.toThrow(/no earlier version/);
  });

  it("a corrupted upload is refused by its sha256 and leaves nothing behind", async () => {
    const { client } = await connectAgent(t);
    try {
      const before = await client.list();
      const begin = await client.request({
        t: "put.begin",
        kind: "model",
        size: mnist.length,
        sha256: "0".repeat(64),
      });
      await client.post({ t: "put.chunk", put: begin.header.id }, mnist);
      const err = await client.request({ t: "put.end", put: begin.header.id }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RemoteError);
      expect((err as RemoteError).code).toBe("sha256-mismatch");
      const after = await client.list();
      expect(after.models).toEqual(before.models);
      expect(readdirSync(join(home, "tmp"))).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it("an upload cut mid-way (agent killed) keeps current and shows no partial model", async () => {
    const { client } = await connectAgent(t);
    const before = await client.list();
    const big = new Uint8Array(3 << 20).fill(7);
    const begin = await client.request({
      t: "put.begin",
      kind: "model",
      size: big.length,
      sha256: "a".repeat(64),
    });
    // half the bytes, then the plug is pulled
    await client.post({ t: "put.chunk", put: begin.header.id }, big.subarray(0, 1 << 20));
    await new Promise((r) => setTimeout(r, 200));
    expect(readdirSync(join(home, "tmp")).length).toBe(1); // the partial upload exists, but only in tmp/
    client.channel.kill();
    await client.exited;
    const after = await listModels(t); // a new agent: cleans what the dead one left
    expect(after.current).toBe(before.current);
    expect(after.models.map((m) => m.sha256).sort()).toEqual(before.models.map((m) => m.sha256).sort());
    expect(readdirSync(join(home, "tmp"))).toEqual([]);
  });

  it("validates mnist-8 on the local board: identical to the host", async () => {
    const set = mnistTest(20);
    const r = await validateModel(mnist, set, t, { maxDrift: 0.01, layers: ["Convolution28_Output_0"] });
    expect(r.samples).toBe(20);
    expect(r.batchSize).toBe(1);
    expect(r.hostAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(r.boardAccuracy).toBe(r.hostAccuracy);
    expect(r.agreement).toBe(1);
    expect(r.output.maxAbs).toBe(0);
    expect(r.layers[0]!.name).toBe("Convolution28_Output_0");
    expect(r.layers[0]!.maxAbs).toBe(0);
    expect(r.exceeded).toBe(false);
    expect(r.latencyMs.p50).toBeGreaterThan(0);
    expect(r.latencyMs.p99).toBeGreaterThanOrEqual(r.latencyMs.p50);
    expect(r.peakRssBytes).toBeGreaterThan(10 << 20);
    expect(r.perClass.reduce((a, c) => a + c.count, 0)).toBe(20);
  });

  it("validates a QDQ model in batches: the output difference in quantization steps, a padded last batch", async () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: ["batch", 4] });
    const w = g.constant("w", f32([4, 3], [0.5, -1, 0.25, 1, 0.5, -0.5, -0.25, 0.75, 1, 0.1, 0.2, 0.3]));
    const mm = g.op("MatMul", ["x", w], {}, { output: "mm" });
    const scale = g.constant("scale", f32([], [0.05]));
    const zp = g.constant("zp", tensor("int8", [], [0]));
    const q = g.op("QuantizeLinear", [mm, scale, zp]);
    g.op("DequantizeLinear", [q, scale, zp], {}, { output: "y" });
    g.outputs.push({ name: "y", dtype: "float32", shape: ["batch", 3] });
    const bytes = encodeModel(modelOf(g, { "": 17 }));
    const n = 10;
    const inputs = Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(i * 1.7));
    const labels = Array.from({ length: n }, (_, i) => i % 3);
    const r = await validateModel(bytes, { inputs, sampleShape: [4], labels }, t, {
      batchSize: 4,
      layers: ["mm"],
    });
    expect(r.samples).toBe(n);
    expect(r.batchLatencyMs.max).toBeGreaterThan(0);
    expect(r.output.scale).toBeCloseTo(0.05, 7);
    expect(r.output).toMatchObject({ maxSteps: 0, stepKind: "dequantize", changed: 0 });
    expect(r.layers[0]).toMatchObject({
      name: "mm",
      maxAbs: 0,
      op: "MatMul",
      ops: ["MatMul"],
      diverged: false,
    });
    // a MatMul of a float input: no quantization step of its own, so steps of its range (max − min) / 255
    expect(r.layers[0]!.stepKind).toBe("range");
    expect(r.firstDivergence).toBeNull();
    expect(r.probe).toEqual({ host: 0, board: 0 });
    expect(r.perClass.map((c) => c.count)).toEqual([4, 3, 3]);
  });

  it("runs the WebAssembly fallback (onnxruntime-web, for glibc < 2.28 boards) with the host's outputs", async () => {
    const web = new LocalTransport({ home: join(dir, "web-home"), label: "local-wasm" });
    const s = await setupDevice(web, { backend: "onnxruntime-web" });
    expect(s.installed.backend).toBe("onnxruntime-web");
    expect(s.runtime.web).toBeTruthy();
    const pkgs = readdirSync(join(dir, "web-home", "install", s.key, "node_modules")).sort();
    expect(pkgs).toEqual(["onnxruntime-common", "onnxruntime-web"]); // no native binaries pushed
    expect((await setupDevice(web, { backend: "onnxruntime-web" })).changed).toBe(false);
    const r = await validateModel(mnist, mnistTest(5), web);
    expect(r.agreement).toBe(1);
    expect(r.output.maxAbs).toBeLessThan(1e-4 * r.output.refMaxAbs);
  });

  it("speaks through any byte noise before the first frame", async () => {
    const key = await installKey();
    // a login banner on the channel, as a chatty .bashrc would print
    const ch = await t.spawn([
      "sh",
      "-c",
      'echo "Welcome to the board"; exec "$0" "$@"',
      ...t.node,
      agentPath(t, key),
      "--home",
      home,
    ]);
    const client = new AgentClient(ch, "local");
    await authenticate(client, t.secret);
    const hello = await client.hello();
    expect(hello.protocol).toBe(1);
    await client.close();
  });
});
