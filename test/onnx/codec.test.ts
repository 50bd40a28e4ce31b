import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import protobuf from "protobufjs";
import { afterAll, describe, expect, it } from "vitest";
import { decodeModel, encodeMessage, encodeModel, loadModel, modelOf } from "../../src/onnx/codec.js";
import { DTYPE_CODE, type DType, floatToHalf } from "../../src/onnx/dtype.js";
import { OnnxError } from "../../src/onnx/errors.js";
import { Graph, type Model, type ValueInfo } from "../../src/onnx/ir.js";
import { ONNX_PROTO } from "../../src/onnx/schema.js";
import { type Tensor, tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { seeded } from "../helpers/random.js";
import { SHARED_MODELS, sharedModels } from "../helpers/shared-models.js";

const ModelProto = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");

/** Random feeds for every input ORT reports, symbolic dims set to 2. */
function randomFeeds(session: ort.InferenceSession, seed: number): Record<string, Tensor> {
  const rand = seeded(seed);
  const feeds: Record<string, Tensor> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) throw new Error(`input ${meta.name} is not a tensor`);
    const dims = meta.shape.map((d) => (typeof d === "number" && d > 0 ? d : 2));
    const n = dims.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, () => rand() * 8 - 4);
    if (meta.type === "float32") feeds[meta.name] = tensor("float32", dims, values);
    else if (meta.type === "float16") feeds[meta.name] = tensor("float16", dims, values.map(floatToHalf));
    else throw new Error(`no random feed for ${meta.type} input ${meta.name}`);
  }
  return feeds;
}

const bytesOf = (t: Tensor): Buffer => {
  const d = t.data as ArrayBufferView;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};

/** Run both models on the same feeds; every output element must be bitwise equal. */
async function expectSameOutputs(a: Uint8Array | string, b: Uint8Array | string, seed = 7): Promise<number> {
  const sa = await openSession(a, { threads: 1 });
  const sb = await openSession(b, { threads: 1 });
  const feeds = randomFeeds(sa, seed);
  const ra = await run(sa, feeds);
  const rb = await run(sb, feeds);
  expect(Object.keys(rb).sort()).toEqual(Object.keys(ra).sort());
  let elements = 0;
  for (const [k, v] of Object.entries(ra)) {
    expect(rb[k]!.dtype).toBe(v.dtype);
    expect(rb[k]!.dims).toEqual(v.dims);
    expect(bytesOf(rb[k]!).equals(bytesOf(v)), `output ${k} differs`).toBe(true);
    elements += (v.data as ArrayLike<unknown>).length;
  }
  await sa.release();
  await sb.release();
  return elements;
}

/**
 * A model as plain data for deep equality, with every typed array replaced by its type and a hash of its bytes
 * (toEqual over a million float16 elements one by one takes seconds; a byte hash is exact and fast).
 */
function plain(x: unknown): unknown {
  if (ArrayBuffer.isView(x)) {
    const h = createHash("sha256")
      .update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength))
      .digest("hex");
    return { [x.constructor.name]: h };
  }
  if (x instanceof Map) return [...x].map(([k, v]) => [k, plain(v)]);
  if (Array.isArray(x)) return x.map(plain);
  if (x && typeof x === "object") {
    const out: Record<string, unknown> = { class: x.constructor?.name };
    for (const [k, v] of Object.entries(x)) out[k] = plain(v);
    return out;
  }
  return x;
}

describe("shared models round-trip", () => {
  for (const file of sharedModels()) {
    const path = join(SHARED_MODELS, file);
    it(`${file}: re-encoded model gives bit-identical ORT outputs`, async () => {
      const original = new Uint8Array(readFileSync(path));
      const again = encodeModel(loadModel(path));
      let loads = true;
      try {
        await (await openSession(original, { threads: 1 })).release();
      } catch {
        loads = false;
      }
      if (loads) {
        expect(await expectSameOutputs(original, again)).toBeGreaterThan(0);
      } else {
        // ORT cannot run this model (mnist-zoo-2018-opset1: ORT has no Add-1 kernel); it must reject both alike
        const reason = async (b: Uint8Array) =>
          openSession(b, { threads: 1 }).then(
            () => "loaded",
            (e: Error) => e.message,
          );
        expect(await reason(again)).toBe(await reason(original));
      }
    });

    it(`${file}: decoding is deterministic and decode(encode(decode(x))) equals decode(x)`, () => {
      const bytes = new Uint8Array(readFileSync(path));
      const a = decodeModel(bytes);
      expect(plain(decodeModel(bytes))).toEqual(plain(a));
      const encoded = encodeModel(a);
      const b = decodeModel(encoded);
      expect(plain(b)).toEqual(plain(a));
      // encoding is a fixpoint after one round
      expect(Buffer.from(encodeModel(b)).equals(Buffer.from(encoded))).toBe(true);
    });
  }

  it("squeezenet's float16 weights widen to float32 on request", () => {
    const path = join(SHARED_MODELS, "squeezenet1.0-fp16.onnx");
    const half = loadModel(path).graph.initializers.get("conv1_w_0")!;
    const wide = loadModel(path, { widenHalf: true }).graph.initializers.get("conv1_w_0")!;
    expect(half.dtype).toBe("float16");
    expect(wide.dtype).toBe("float32");
    const h = half.data as Uint16Array;
    const w = wide.data as Float32Array;
    expect(w.length).toBe(h.length);
    for (let i = 0; i < h.length; i++) expect(floatToHalf(w[i]!)).toBe(h[i]); // exact: every half is a float32
  });
});

describe("fields qat does not interpret", () => {
  it("survive decode and encode: metadata, docs, denotations, functions, training info, sparse and raw attributes", () => {
    const dim = (v: number, denotation?: string) => ({ dim_value: v, ...(denotation ? { denotation } : {}) });
    const fields = {
      ir_version: 10,
      opset_import: [
        { domain: "", version: 21 },
        { domain: "local", version: 1 },
      ],
      producer_name: "hand",
      producer_version: "1.0",
      domain: "ai.qat.test",
      model_version: 7,
      doc_string: "model doc",
      metadata_props: [
        { key: "author", value: "me" },
        { key: "__proto__", value: "kept" },
      ],
      graph: {
        name: "g",
        doc_string: "graph doc",
        node: [
          {
            name: "n0",
            op_type: "Twice",
            domain: "local",
            input: ["x"],
            output: ["y"],
            doc_string: "node doc",
            attribute: [{ name: "alpha", ref_attr_name: "a", type: 1 }],
            metadata_props: [{ key: "k", value: "v" }],
          },
        ],
        input: [
          {
            name: "x",
            type: {
              denotation: "TENSOR",
              tensor_type: {
                elem_type: 1,
                shape: { dim: [dim(1, "DATA_BATCH"), dim(3, "DATA_CHANNEL"), { dim_param: "h" }] },
              },
            },
          },
        ],
        output: [{ name: "y", type: { sequence_type: { elem_type: { tensor_type: { elem_type: 1 } } } } }],
        sparse_initializer: [
          {
            values: { name: "sp", data_type: 1, dims: [2], float_data: [1, 2] },
            indices: { data_type: 7, dims: [2], int64_data: [0, 5] },
            dims: [10],
          },
        ],
        quantization_annotation: [
          { tensor_name: "y", quant_parameter_tensor_names: [{ key: "SCALE_TENSOR", value: "s" }] },
        ],
        metadata_props: [{ key: "gk", value: "gv" }],
      },
      functions: [
        {
          name: "Twice",
          domain: "local",
          input: ["a"],
          output: ["b"],
          attribute: ["alpha"],
          node: [{ op_type: "Add", input: ["a", "a"], output: ["b"] }],
          opset_import: [{ domain: "", version: 21 }],
        },
      ],
      training_info: [{ algorithm: { name: "step" }, update_binding: [{ key: "w", value: "w_new" }] }],
    };
    const original = encodeMessage("onnx.ModelProto", fields);
    const model = decodeModel(original);
    expect(model.metadata).toEqual({ author: "me", ["__proto__"]: "kept" });
    expect(model.graph.inputs[0]!.shape).toEqual([1, 3, "h"]);
    const again = encodeModel(model);
    // compare as protobuf messages: every field written back, none lost or changed
    const asObject = (b: Uint8Array) =>
      ModelProto.toObject(ModelProto.decode(b), { longs: String, defaults: false });
    expect(asObject(again)).toEqual(asObject(original));
  });
});

// ---------------------------------------------------------------- hand-built TensorProtos

/** A model holding one initializer given as TensorProto fields; returns the decoded tensor. */
function decodeTensorFields(fields: Record<string, unknown>, widenHalf = false): Tensor {
  const bytes = encodeMessage("onnx.ModelProto", {
    ir_version: 8,
    opset_import: [{ domain: "", version: 17 }],
    graph: { name: "g", initializer: [{ name: "t", ...fields }] },
  });
  return decodeModel(bytes, { widenHalf }).graph.initializers.get("t")!;
}

const raw = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

interface Case {
  dtype: DType;
  field: string;
  values: unknown[];
  expected: ArrayLike<number | bigint>;
}

const half = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x8000, 0x3555];
const CASES: Case[] = [
  {
    dtype: "float32",
    field: "float_data",
    values: [1.5, -0, 3.4028234663852886e38, 1e-45],
    expected: Float32Array.of(1.5, -0, 3.4028234663852886e38, 1e-45),
  },
  { dtype: "uint8", field: "int32_data", values: [0, 255, 7], expected: Uint8Array.of(0, 255, 7) },
  { dtype: "int8", field: "int32_data", values: [-128, 127, -1], expected: Int8Array.of(-128, 127, -1) },
  { dtype: "uint16", field: "int32_data", values: [0, 65535], expected: Uint16Array.of(0, 65535) },
  { dtype: "int16", field: "int32_data", values: [-32768, 32767], expected: Int16Array.of(-32768, 32767) },
  {
    dtype: "int32",
    field: "int32_data",
    values: [-2147483648, 2147483647],
    expected: Int32Array.of(-2147483648, 2147483647),
  },
  { dtype: "bool", field: "int32_data", values: [1, 0, 1], expected: Uint8Array.of(1, 0, 1) },
  { dtype: "float16", field: "int32_data", values: half, expected: Uint16Array.from(half) },
  {
    dtype: "bfloat16",
    field: "int32_data",
    values: [0x3f80, 0x4049, 0xff80, 0x0001],
    expected: Uint16Array.of(0x3f80, 0x4049, 0xff80, 0x0001),
  },
  {
    dtype: "float8e4m3fn",
    field: "int32_data",
    values: [0x38, 0x7e, 0xff],
    expected: Uint8Array.of(0x38, 0x7e, 0xff),
  },
  {
    dtype: "int64",
    field: "int64_data",
    values: ["9007199254740993", "-9223372036854775808", "9223372036854775807", "-1"],
    expected: BigInt64Array.of(9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n, -1n),
  },
  {
    dtype: "uint64",
    field: "uint64_data",
    values: ["18446744073709551615", "9007199254740993"],
    expected: BigUint64Array.of(2n ** 64n - 1n, 9007199254740993n),
  },
  {
    dtype: "uint32",
    field: "uint64_data",
    values: ["4294967295", "1"],
    expected: Uint32Array.of(4294967295, 1),
  },
  {
    dtype: "float64",
    field: "double_data",
    values: [Math.PI, -0, 1e308],
    expected: Float64Array.of(Math.PI, -0, 1e308),
  },
  { dtype: "complex64", field: "float_data", values: [1, 2, 3, 4], expected: Float32Array.of(1, 2, 3, 4) },
  { dtype: "complex128", field: "double_data", values: [0.1, -0.2], expected: Float64Array.of(0.1, -0.2) },
];

describe("initializers of every dtype", () => {
  for (const c of CASES) {
    const n = c.expected.length / (c.dtype.startsWith("complex") ? 2 : 1);
    const fields = { data_type: DTYPE_CODE[c.dtype], dims: [n] };
    const check = (t: Tensor) => {
      expect(t.dtype).toBe(c.dtype);
      expect(t.dims).toEqual([n]);
      expect(t.data).toEqual(c.expected);
      expect(raw(t.data as ArrayBufferView)).toEqual(raw(c.expected as unknown as ArrayBufferView));
    };
    it(`${c.dtype} in ${c.field}`, () => check(decodeTensorFields({ ...fields, [c.field]: c.values })));
    it(`${c.dtype} in raw_data`, () =>
      check(decodeTensorFields({ ...fields, raw_data: raw(c.expected as unknown as ArrayBufferView) })));
    it(`${c.dtype} survives encode and decode bit for bit`, () => {
      const t = decodeTensorFields({ ...fields, [c.field]: c.values });
      const g = new Graph();
      g.initializers.set("t", t);
      const back = decodeModel(encodeModel(modelOf(g))).graph.initializers.get("t")!;
      check(back);
    });
  }

  it("string in string_data", () => {
    const enc = new TextEncoder();
    const t = decodeTensorFields({
      data_type: DTYPE_CODE.string,
      dims: [2],
      string_data: [enc.encode("héllo"), enc.encode("")],
    });
    expect(t.dtype).toBe("string");
    expect((t.data as Uint8Array[]).map((b) => new TextDecoder().decode(b))).toEqual(["héllo", ""]);
  });

  it("float16 widens to float32 with exact values (typed field and raw_data)", () => {
    const expected = [1, -2, 65504, 2 ** -24, Infinity, -Infinity, -0, 0.333251953125];
    for (const fields of [{ int32_data: half }, { raw_data: raw(Uint16Array.from(half)) }]) {
      const t = decodeTensorFields({ data_type: DTYPE_CODE.float16, dims: [8], ...fields }, true);
      expect(t.dtype).toBe("float32");
      expect([...(t.data as Float32Array)]).toEqual(expected); // toEqual tells -0 from 0
    }
    const nan = decodeTensorFields({ data_type: DTYPE_CODE.float16, dims: [1], int32_data: [0x7e00] }, true);
    expect(Number.isNaN((nan.data as Float32Array)[0])).toBe(true);
  });

  it("bfloat16 widens to float32 with exact values", () => {
    const t = decodeTensorFields(
      { data_type: DTYPE_CODE.bfloat16, dims: [4], int32_data: [0x3f80, 0x4049, 0xff80, 0x0001] },
      true,
    );
    expect(t.dtype).toBe("float32");
    expect([...(t.data as Float32Array)]).toEqual([1, 3.140625, -Infinity, 2 ** -133]);
  });

  it("int4 and uint4 unpack from packed nibbles (low nibble first) and pack back", () => {
    // int4 [-8, 7, -1, 0, 3]: nibbles 8,7,f,0,3 -> bytes 0x78, 0x0f, 0x03
    const packed = Uint8Array.of(0x78, 0x0f, 0x03);
    for (const fields of [{ raw_data: packed }, { int32_data: [...packed] }]) {
      const t = decodeTensorFields({ data_type: DTYPE_CODE.int4, dims: [5], ...fields });
      expect(t.data).toEqual(Int8Array.of(-8, 7, -1, 0, 3));
      const u = decodeTensorFields({ data_type: DTYPE_CODE.uint4, dims: [5], ...fields });
      expect(u.data).toEqual(Uint8Array.of(8, 7, 15, 0, 3));
    }
    const g = new Graph();
    g.initializers.set("t", tensor("int4", [5], Int8Array.of(-8, 7, -1, 0, 3)));
    const m = encodeModel(modelOf(g));
    expect(Buffer.from(m).includes(Buffer.from([0x4a, 3, 0x78, 0x0f, 0x03]))).toBe(true); // raw_data field 9, 3 bytes
    expect(decodeModel(m).graph.initializers.get("t")!.data).toEqual(Int8Array.of(-8, 7, -1, 0, 3));
  });

  it("int64 attributes at the limits survive re-encoding", () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: [4] });
    const y = g.op("Identity", ["x"], { big: { type: "ints", value: [2 ** 53, -(2 ** 63), 2 ** 63] } });
    g.outputs.push({ name: y });
    const attr = decodeModel(encodeModel(modelOf(g))).graph.nodes[0]!.attrs.big!;
    // 2^63 as a number is INT64_MAX after the round trip (saturated), as ONNX files write it for "to the end"
    expect(attr).toEqual({ type: "ints", value: [2 ** 53, -(2 ** 63), 2 ** 63] });
  });

  it("element counts that do not match the dims are refused", () => {
    expect(() =>
      decodeTensorFields({ data_type: DTYPE_CODE.float32, dims: [3], float_data: [1, 2] }),
    ).toThrow(OnnxError);
    expect(() =>
      decodeTensorFields({ data_type: DTYPE_CODE.float32, dims: [3], raw_data: new Uint8Array(8) }),
    ).toThrow(/raw data has 8 bytes, dims \[3\] of float32 need 12/);
    expect(() => decodeTensorFields({ data_type: 99, dims: [1] })).toThrow(/unknown data type 99/);
  });
});

// ---------------------------------------------------------------- external data

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

// ---------------------------------------------------------------- subgraphs

describe("If and Loop subgraphs", () => {
  const f = (name: string, shape: ValueInfo["shape"]): ValueInfo => ({ name, dtype: "float32", shape });

  /** y = cond ? x*x : -x; z = Loop n times { v += x; (If v>0 then v else 0) }; scan of v. */
  function build(): Model {
    const g = new Graph();
    g.name = "control";
    g.inputs.push(
      f("x", [3]),
      { name: "cond", dtype: "bool", shape: [] },
      { name: "n", dtype: "int64", shape: [] },
    );

    const thenG = new Graph();
    thenG.name = "then";
    thenG.outputs.push(f(thenG.op("Mul", ["x", "x"], {}, { output: "t_out" }), [3]));
    const elseG = new Graph();
    elseG.name = "else";
    elseG.outputs.push(f(elseG.op("Neg", ["x"], {}, { output: "e_out" }), [3]));
    const [y] = g.add("If", ["cond"], { then_branch: thenG, else_branch: elseG }, { outputs: ["y"] });

    const body = new Graph();
    body.name = "body";
    body.inputs.push(
      { name: "i", dtype: "int64", shape: [] },
      { name: "c_in", dtype: "bool", shape: [] },
      f("v_in", [3]),
    );
    const v = body.op("Add", ["v_in", "x"]);
    const s = body.op("ReduceSum", [v], { keepdims: 0 });
    const zero = body.constant("zero", tensor("float32", [], [0]));
    const pos = body.op("Greater", [s, zero]);
    const inner = new Graph();
    inner.name = "inner_then";
    inner.outputs.push(f(inner.op("Identity", [v], {}, { output: "in_t" }), [3]));
    const innerElse = new Graph();
    innerElse.name = "inner_else";
    innerElse.outputs.push(f(innerElse.op("Sub", [v, v], {}, { output: "in_e" }), [3]));
    const clipped = body.add(
      "If",
      [pos],
      { then_branch: inner, else_branch: innerElse },
      { outputs: ["clipped"] },
    )[0]!;
    body.outputs.push(
      { name: body.op("Identity", ["c_in"], {}, { output: "c_out" }), dtype: "bool", shape: [] },
      f(body.op("Identity", [clipped], {}, { output: "v_out" }), [3]),
      f(body.op("Identity", [s], {}, { output: "scan" }), []),
    );
    const z = g.add("Loop", ["n", "", "x"], { body }, { outputs: ["z", "sums"] });
    g.outputs.push(f(y!, [3]), f(z[0]!, [3]), f(z[1]!, [null]));
    return modelOf(g, { "": 17 });
  }

  it("survive decode/encode intact and give identical ORT outputs", async () => {
    const first = encodeModel(build());
    const decoded = decodeModel(first);
    const loop = decoded.graph.nodes.find((n) => n.opType === "Loop")!;
    const body = loop.attrs.body;
    expect(body?.type).toBe("graph");
    if (body?.type !== "graph") return;
    expect(body.value.nodes.map((n) => n.opType)).toEqual([
      "Add",
      "ReduceSum",
      "Greater",
      "If",
      "Identity",
      "Identity",
      "Identity",
    ]);
    expect(body.value.initializers.get("zero")!.data).toEqual(Float32Array.of(0));
    const again = encodeModel(decoded);
    expect(Buffer.from(again).equals(Buffer.from(first))).toBe(true);
    expect(decodeModel(again)).toEqual(decoded);

    for (const [cond, n] of [
      [1, 3],
      [0, 4],
    ] as const) {
      const feeds = {
        x: tensor("float32", [3], [0.5, -1.25, 2]),
        cond: tensor("bool", [], [cond]),
        n: tensor("int64", [], [BigInt(n)]),
      };
      const a = await run(await openSession(first, { threads: 1 }), feeds);
      const b = await run(await openSession(again, { threads: 1 }), feeds);
      for (const k of ["y", "z", "sums"]) expect(bytesOf(b[k]!).equals(bytesOf(a[k]!))).toBe(true);
      // and the graph computes what it says: y = x*x or -x, z = x * (n + 1) (all sums stay positive)
      expect([...(a.y!.data as Float32Array)]).toEqual(cond ? [0.25, 1.5625, 4] : [-0.5, 1.25, -2]);
      expect([...(a.z!.data as Float32Array)]).toEqual([0.5, -1.25, 2].map((v) => v * (n + 1)));
      expect(a.sums!.dims).toEqual([n]);
    }
  });
});
