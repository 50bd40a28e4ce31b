import { describe, expect, it } from "vitest";
import { decodeModel, encodeMessage, encodeModel, modelOf } from "../../src/onnx/codec.js";
import { DTYPE_CODE, type DType } from "../../src/onnx/dtype.js";
import { OnnxError } from "../../src/onnx/errors.js";
import { Graph } from "../../src/onnx/ir.js";
import { type Tensor, tensor } from "../../src/onnx/tensor.js";
import { raw } from "./codec-helpers.js";

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
