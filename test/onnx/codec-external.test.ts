import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decodeModel, encodeMessage, encodeModel, loadModel } from "../../src/onnx/codec.js";
import { DTYPE_CODE } from "../../src/onnx/dtype.js";
import { OnnxError } from "../../src/onnx/errors.js";
import { expectSameOutputs, raw } from "./codec-helpers.js";

describe("external data", () => {
  const dir = mkdtempSync(join(tmpdir(), "qat-ext-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const weights = Float32Array.from({ length: 6 }, (_, i) => i * 0.25 - 0.5);
  const side = new Uint8Array(16 + 24 + 8);
  side.set(raw(weights), 16); // 16 bytes of other data before, 8 after
  mkdirSync(join(dir, "m"));
  writeFileSync(join(dir, "m", "weights.bin"), side);
  writeFileSync(join(dir, "outside.bin"), side);
  symlinkSync(join(dir, "outside.bin"), join(dir, "m", "link.bin"));

  /** A MatMul model whose weight [3, 2] lives in a side file. */
  function model(ext: Record<string, string>): Uint8Array {
    return encodeMessage("onnx.ModelProto", {
      ir_version: 8,
      opset_import: [{ domain: "", version: 17 }],
      graph: {
        name: "ext",
        node: [{ op_type: "MatMul", input: ["x", "w"], output: ["y"], name: "mm" }],
        initializer: [
          {
            name: "w",
            data_type: DTYPE_CODE.float32,
            dims: [3, 2],
            data_location: 1,
            external_data: Object.entries(ext).map(([key, value]) => ({ key, value })),
          },
        ],
        input: [
          {
            name: "x",
            type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }, { dim_value: 3 }] } } },
          },
        ],
        output: [{ name: "y", type: { tensor_type: { elem_type: 1 } } }],
      },
    });
  }
  const write = (name: string, ext: Record<string, string>): string => {
    const path = join(dir, "m", name);
    writeFileSync(path, model(ext));
    return path;
  };
  const good = { location: "weights.bin", offset: "16", length: "24" };

  it("reads the tensor at offset/length relative to the model, and ORT agrees bit for bit", async () => {
    const path = write("good.onnx", good);
    const m = loadModel(path);
    expect(m.graph.initializers.get("w")!.data).toEqual(weights);
    // ORT reads the side file itself from the path; our re-encoded model carries the weights inline
    await expectSameOutputs(path, encodeModel(m));
  });

  it("without offset and length reads the whole file", () => {
    writeFileSync(join(dir, "m", "exact.bin"), raw(weights));
    const m = loadModel(write("whole.onnx", { location: "exact.bin" }));
    expect(m.graph.initializers.get("w")!.data).toEqual(weights);
  });

  const bad: [string, Record<string, string> | null, RegExp][] = [
    ["decoded without a path", null, /needs the model's path/],
    ["a missing file", { location: "nope.bin" }, /'nope.bin' not found next to the model/],
    ["an absolute location", { location: join(dir, "m", "weights.bin") }, /must be relative to the model/],
    ["../ leaving the folder", { location: "../outside.bin" }, /leaves the model's folder/],
    ["a symlink leaving the folder", { location: "link.bin" }, /leaves the model's folder/],
    ["the folder itself", { location: "." }, /leaves the model's folder|is not a file/],
    [
      "offset past the end",
      { location: "weights.bin", offset: "40", length: "24" },
      /offset 40 \+ length 24 is outside the file \(48 bytes\)/,
    ],
    ["length past the end", { location: "weights.bin", length: "4000" }, /outside the file/],
    [
      "a non-numeric offset",
      { location: "weights.bin", offset: "-1" },
      /offset '-1' is not a non-negative integer/,
    ],
    [
      "a length not matching the dims",
      { location: "weights.bin", offset: "0", length: "20" },
      /raw data has 20 bytes/,
    ],
  ];
  for (const [what, ext, message] of bad) {
    it(`${what} raises OnnxError`, () => {
      const err = (() => {
        try {
          if (ext) loadModel(write(`bad-${what.replace(/\W+/g, "-")}.onnx`, ext));
          else decodeModel(model(good));
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(OnnxError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).toMatch(/tensor 'w'/);
    });
  }
});
