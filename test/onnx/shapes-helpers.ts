import { modelOf } from "../../src/onnx/codec.js";
import type { DType } from "../../src/onnx/dtype.js";
import { type Attr, type AttrInput, type Dim, Graph, type Model } from "../../src/onnx/ir.js";
import { numel, type Tensor, tensor } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";

export type In = { name: string; dtype?: DType; shape: Dim[] } | { name: string; init: Tensor } | "";

/** A one-node model: inputs are graph inputs (with shapes) or initializers; outputs are graph outputs. */
export function single(
  op: string,
  ins: In[],
  attrs: Record<string, Attr | AttrInput> = {},
  opts: { outputs?: number; opset?: number; name?: string } = {},
): Model {
  const g = new Graph();
  g.name = op;
  for (const i of ins) {
    if (i === "") continue;
    if ("init" in i) g.initializers.set(i.name, i.init);
    else g.inputs.push({ name: i.name, dtype: i.dtype ?? "float32", shape: i.shape });
  }
  const outs = Array.from({ length: opts.outputs ?? 1 }, (_, k) => `y${k}`);
  g.add(
    op,
    ins.map((i) => (i === "" ? "" : i.name)),
    attrs,
    { outputs: outs, name: opts.name ?? "n" },
  );
  g.outputs = outs.map((name) => ({ name }));
  const m = modelOf(g, { "": opts.opset ?? 17 });
  if ((opts.opset ?? 17) < 8) m.irVersion = 3;
  return m;
}

/** Deterministic pseudo-random values in [-1, 1). */
export function values(n: number, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** Feeds for a model's graph inputs; symbolic dims get `batch`. */
export function feeds(m: Model, batch = 2): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  m.graph.inputs.forEach((v, k) => {
    const dims = v.shape!.map((d) => (typeof d === "number" ? d : batch));
    const n = numel(dims);
    const x = values(n, k + 7);
    if (v.dtype === "int64")
      out[v.name] = tensor(
        "int64",
        dims,
        Array.from(x, (f) => BigInt(Math.floor(f * 3))),
      );
    else if (v.dtype === "bool")
      out[v.name] = tensor(
        "bool",
        dims,
        Array.from(x, (f) => (f > 0 ? 1 : 0)),
      );
    else out[v.name] = tensor(v.dtype ?? "float32", dims, x);
  });
  return out;
}

/** Run a model in ORT (one thread) and return its outputs. */
export async function runOrt(
  m: Model | Uint8Array,
  f: Record<string, Tensor>,
): Promise<Record<string, Tensor>> {
  const s = await openSession(m, { threads: 1, optimization: "disabled" });
  try {
    return await run(s, f);
  } finally {
    await s.release();
  }
}
