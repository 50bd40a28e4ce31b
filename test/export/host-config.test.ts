/**
 * EXACT_HOST_CONFIG is the one host session config for int8 models. It leaves out `session.qdqisint8allowed`
 * because ORT 1.30 cannot open an int8-activation model exported for ort-cpu with it (measured; see
 * src/runtime/host-config.ts); without it the same model opens and matches the simulation.
 */
import { describe, expect, it } from "vitest";
import { exportCheckpoint } from "../../src/export/export.js";
import { checkParity } from "../../src/export/parity.js";
import { loadQatSource } from "../../src/export/source.js";
import { modelOf } from "../../src/onnx/codec.js";
import { WORKING_OPSET } from "../../src/onnx/opset/working.js";
import { EXACT_HOST_CONFIG } from "../../src/runtime/host-config.js";
import { openSession } from "../../src/runtime/session.js";
import { qatCheckpoint, synthDataset, tempDir } from "./fixtures.js";

describe("the exact host config", () => {
  it("opens a tensorrt-preset (int8 activations) model exported for ort-cpu and passes parity; with qdqisint8allowed ORT cannot", async () => {
    const src = loadQatSource(await qatCheckpoint(tempDir(), "mnist-cnn", "tensorrt"));
    const data = synthDataset([1, 28, 28], 128, 4);
    const r = await exportCheckpoint(src, { target: "ort-cpu", data, threads: 1 });
    expect(Object.keys(EXACT_HOST_CONFIG)).toEqual(["session.x64quantprecision"]);
    const p = await checkParity(r.bytes, modelOf(src.graph, { "": WORKING_OPSET }), { data, threads: 1 });
    expect(p.hostConfig).toEqual({ ...EXACT_HOST_CONFIG });
    expect(p.passed, p.failures.join("\n")).toBe(true);
    expect(p.agreement).toBe(1);
    await expect(
      openSession(r.bytes, { config: { ...EXACT_HOST_CONFIG, "session.qdqisint8allowed": "1" } }),
    ).rejects.toThrow(/Failed to find kernel/);
  });
});
