import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { decodeModel, encodeMessage, encodeModel, loadModel, modelOf } from "../../src/onnx/codec.js";
import { floatToHalf } from "../../src/onnx/dtype.js";
import { Graph, type Model, type ValueInfo } from "../../src/onnx/ir.js";
import { ONNX_PROTO } from "../../src/onnx/schema.js";
import { tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { SHARED_MODELS, sharedModels } from "../helpers/shared-models.js";
import { bytesOf, expectSameOutputs } from "./codec-helpers.js";

// Tensors of every dtype are in codec-tensors.test.ts, external data in codec-external.test.ts.

const ModelProto = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType("onnx.ModelProto");

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
