import { readFileSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { loadModels, makeCase, runFuzz } from "../../bench/fuzz.js";
import { decodeModel, encodeMessage, loadModel } from "../../src/onnx/codec.js";
import { OnnxError } from "../../src/onnx/errors.js";
import { ONNX_PROTO } from "../../src/onnx/schema.js";
import { checkWire, MAX_MESSAGE_DEPTH } from "../../src/onnx/wire.js";
import { SHARED_MODELS } from "../helpers/shared-models.js";

/** The error decoding raises; fails the test when decoding succeeds or throws anything but OnnxError. */
function decodeError(bytes: Uint8Array, path?: string): OnnxError {
  try {
    decodeModel(bytes, { path });
  } catch (e) {
    if (e instanceof OnnxError) return e;
    throw new Error(`expected OnnxError, got ${(e as Error).name}: ${(e as Error).message}`);
  }
  throw new Error("expected the model to be refused, but it decoded");
}

const mnist = new Uint8Array(readFileSync(join(SHARED_MODELS, "mnist-8.onnx")));

/** A model around one graph given as protobuf fields. */
const modelBytes = (graph: Record<string, unknown>): Uint8Array =>
  encodeMessage("onnx.ModelProto", { ir_version: 8, opset_import: [{ domain: "", version: 17 }], graph });

describe("fuzzing the decoder", () => {
  it("300 seeded mutations of the shared models: every case decodes or raises OnnxError", () => {
    const report = runFuzz({ cases: 300, seed: 20240611, models: loadModels(SHARED_MODELS) });
    expect(report.crashes).toEqual([]);
    expect(report.cases).toBe(300);
    expect(report.decoded + report.typedErrors).toBe(300);
    // the sample exercises both outcomes and every mutation kind
    expect(report.decoded).toBeGreaterThan(0);
    expect(report.typedErrors).toBeGreaterThan(0);
    expect(Object.keys(report.byKind).length).toBe(9);
  });

  it("cases are a function of (seed, index) alone", () => {
    const models = loadModels(SHARED_MODELS);
    const a = makeCase(models, 5, 123);
    const b = makeCase(models, 5, 123);
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
    expect(Buffer.from(makeCase(models, 6, 123).bytes).equals(Buffer.from(a.bytes))).toBe(false);
  });
});

describe("bad input raises one OnnxError naming the file and place", () => {
  it("truncated file: names the file and the byte offset of the cut field", () => {
    const path = join(SHARED_MODELS, "mnist-8.onnx");
    const e = decodeError(mnist.subarray(0, 20000), path);
    expect(e.where.file).toBe(path);
    expect(e.where.offset).toBeTypeOf("number");
    expect(e.message).toMatch(
      /^.*mnist-8\.onnx, byte \d+: field graph: length 26\d+ runs past the end of the data/,
    );
  });

  it("a length prefix claiming 2^31 bytes is refused without allocating", () => {
    // field 2 (producer_name), length varint 2^31 = 80 80 80 80 08, then nothing
    const bytes = Uint8Array.of(0x12, 0x80, 0x80, 0x80, 0x80, 0x08, 0x41);
    const e = decodeError(bytes);
    expect(e.message).toBe(
      "byte 0: field producer_name: length 2147483648 runs past the end of the data (byte 7)",
    );
  });

  it("a known field with the wrong wire type is refused", () => {
    const e = decodeError(Uint8Array.of(0x3d, 1, 2, 3, 4)); // graph (7) as a fixed32
    expect(e.message).toMatch(/field graph: has wire type 5 \(32-bit\), the schema says length-delimited/);
  });

  it("an empty file and a file that is not protobuf", () => {
    expect(decodeError(new Uint8Array()).message).toMatch(/empty/);
    expect(
      decodeError(new TextEncoder().encode("version https://git-lfs.github.com/spec/v1\n")).message,
    ).toMatch(/byte \d+/);
  });

  it(`subgraphs nested beyond ${MAX_MESSAGE_DEPTH} message levels are refused, not a stack overflow`, () => {
    // built from the inside out by concatenating fields: protobufjs's own encoder stops at 100 levels
    const field = (id: number, body: Uint8Array) =>
      Uint8Array.from([id * 8 + 2, ...varint(body.length), ...body]);
    const cat = (a: Uint8Array, b: Uint8Array) => Uint8Array.from([...a, ...b]);
    let g = encodeMessage("onnx.GraphProto", { name: "leaf" });
    for (let i = 0; i < 40; i++) {
      const attr = cat(encodeMessage("onnx.AttributeProto", { name: "then_branch", type: 5 }), field(6, g));
      const node = cat(
        encodeMessage("onnx.NodeProto", { op_type: "If", input: ["c"], output: [`y${i}`] }),
        field(5, attr),
      );
      g = cat(encodeMessage("onnx.GraphProto", { name: `g${i}` }), field(1, node));
    }
    const e = decodeError(field(7, g));
    expect(e.message).toMatch(/messages nested deeper than 100 levels/);
    expect(e.message).toMatch(/field graph\.node\[0\]\.attribute\[0\]\.g\.node\[0\]/);
  });

  it("a TypeProto nested 100,000 deep (500 kB) is refused in linear time", () => {
    // hand-written bytes: protobufjs itself would recurse to write them
    const seqOpen = [0x22]; // TypeProto.sequence_type (4), then Sequence.elem_type (1)
    const parts: number[][] = [];
    let inner = Uint8Array.of(0x0a, 0x02, 0x08, 0x01); // tensor_type { elem_type: FLOAT }
    for (let i = 0; i < 1000; i++) {
      const elem = [0x0a, ...varint(inner.length), ...inner];
      inner = Uint8Array.from([...seqOpen, ...varint(elem.length), ...elem]);
    }
    parts.push([0x0a, 0x01, 0x76, 0x12, ...varint(inner.length), ...inner]); // ValueInfo { name "v", type }
    const vi = Uint8Array.from(parts[0]!);
    const graph = Uint8Array.from([0x5a, ...varint(vi.length), ...vi]); // GraphProto.input (11)
    const bytes = Uint8Array.from([0x3a, ...varint(graph.length), ...graph]); // ModelProto.graph (7)
    expect(decodeError(bytes).message).toMatch(/sequence_type\.elem_type.*nested deeper than 100 levels/);
  });

  it("dims claiming 2^40 elements are refused before anything is allocated", () => {
    const e = decodeError(
      modelBytes({
        initializer: [{ name: "w", data_type: 1, dims: [2 ** 20, 2 ** 20], raw_data: new Uint8Array(4) }],
      }),
    );
    expect(e.message).toMatch(/tensor 'w': dims \[1048576,1048576\] claim 1099511627776 elements/);
    const neg = decodeError(
      modelBytes({ initializer: [{ name: "w", data_type: 1, dims: [-1, 4], raw_data: new Uint8Array(4) }] }),
    );
    expect(neg.message).toMatch(/tensor 'w': invalid dims \[-1,4\]/);
  });

  it("a million-entry repeated field is refused when its decoded objects would not fit the heap budget", () => {
    // 1.5 M packed int64 dims of 1 byte each: protobufjs would build 1.5 M Long objects (~70 MB)
    const packed = new Uint8Array(1_500_000).fill(1);
    const tensor = Uint8Array.from([0x0a, ...varint(packed.length), ...packed, 0x10, 0x01, 0x42, 0x01, 0x77]);
    const graph = Uint8Array.from([0x2a, ...varint(tensor.length), ...tensor]);
    const model = Uint8Array.from([0x3a, ...varint(graph.length), ...graph]);
    const ModelProto = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");
    expect(() => checkWire(model, ModelProto, "x.onnx", 32 * 2 ** 20)).toThrow(
      /^x\.onnx, byte 8: field graph\.initializer\[0\]\.dims: decoding would need more than 32 MB of heap/,
    );
    expect(() => checkWire(model, ModelProto, "x.onnx", 256 * 2 ** 20)).not.toThrow();
  });

  it("attributes whose type and fields disagree", () => {
    const node = (attribute: Record<string, unknown>) =>
      modelBytes({
        node: [{ op_type: "Relu", name: "r", input: ["x"], output: ["y"], attribute: [attribute] }],
      });
    expect(decodeError(node({ name: "a", type: 4 })).message).toMatch(
      /node 'r': attribute 'a' is of type tensor but its field 't' is not set/,
    );
    expect(decodeError(node({ name: "a", type: 5 })).message).toMatch(/field 'g' is not set/);
    expect(decodeError(node({ name: "a", type: 99 })).message).toMatch(
      /attribute 'a' has an unknown type 99/,
    );
    expect(decodeError(node({ name: "a" })).message).toMatch(/attribute 'a' has no value/);
    // a STRING attribute without s is the empty string, as protobuf defaults say
    const m = decodeModel(node({ name: "a", type: 3 }));
    expect(m.graph.nodes[0]!.attrs.a).toEqual({ type: "string", value: "" });
  });

  it("an attribute named __proto__ is kept as data and cannot reach the prototype", () => {
    const m = decodeModel(
      modelBytes({
        node: [
          { op_type: "Relu", input: ["x"], output: ["y"], attribute: [{ name: "__proto__", type: 2, i: 1 }] },
        ],
      }),
    );
    const attrs = m.graph.nodes[0]!.attrs;
    expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype);
    expect(Object.keys(attrs)).toEqual(["__proto__"]);
  });

  it("duplicate attribute and initializer names are refused", () => {
    const a = { name: "k", type: 2, i: 1 };
    expect(
      decodeError(modelBytes({ node: [{ op_type: "Relu", name: "r", attribute: [a, a] }] })).message,
    ).toMatch(/node 'r': attribute 'k' appears twice/);
    const t = { name: "w", data_type: 1, dims: [1], float_data: [1] };
    expect(decodeError(modelBytes({ initializer: [t, t] })).message).toMatch(
      /two initializers are named 'w'/,
    );
  });

  it("value infos with element types newer than our schema or non-tensor types are kept as written", () => {
    const m = decodeModel(
      modelBytes({
        input: [
          { name: "odd", type: { tensor_type: { elem_type: 999, shape: { dim: [{ dim_value: 2 }] } } } },
          { name: "seq", type: { sequence_type: { elem_type: { tensor_type: { elem_type: 1 } } } } },
          { name: "none" },
          {
            name: "neg",
            type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: -1 }, { dim_value: 3 }] } } },
          },
        ],
      }),
    );
    const [odd, seq, none, neg] = m.graph.inputs;
    expect(neg!.shape).toEqual([null, 3]); // -1, as some exporters write "unknown", reads as unknown
    expect(odd!.dtype).toBeUndefined();
    expect(odd!.rawType).toBeDefined();
    expect(seq!.rawType).toBeDefined();
    expect(none).toEqual({ name: "none" });
  });

  it("an invalid data_location or ir_version is refused", () => {
    const t = { name: "w", data_type: 1, dims: [1], float_data: [1], data_location: 7 };
    expect(decodeError(modelBytes({ initializer: [t] })).message).toMatch(
      /tensor 'w': unknown data_location 7/,
    );
    const bad = encodeMessage("onnx.ModelProto", { ir_version: "-5", graph: { name: "g" } });
    expect(decodeError(bad).message).toMatch(/invalid ir_version -5/);
  });

  it("loadModel on a missing file or a directory names the path", () => {
    expect(() => loadModel("/nonexistent/m.onnx")).toThrow(/^\/nonexistent\/m\.onnx: cannot read the model/);
    expect(() => loadModel(SHARED_MODELS)).toThrow(OnnxError);
  });
});

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}
