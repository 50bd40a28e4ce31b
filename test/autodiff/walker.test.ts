import { describe, expect, test } from "vitest";
import { AutodiffError, appendBackward, hasGradientRule, supportedOps } from "../../src/autodiff/index.js";
import { modelOf } from "../../src/onnx/codec.js";
import { Graph } from "../../src/onnx/ir.js";
import { f32, i64 } from "../../src/onnx/tensor.js";
import { openSession, run } from "../../src/runtime/session.js";
import { expectGradOk } from "./check-helpers.js";

async function evalGrads(
  g: Graph,
  loss: string,
  grads: Map<string, string>,
  feeds: Record<string, ReturnType<typeof f32>> = {},
) {
  g.outputs = [loss, ...grads.values()].map((name) => ({ name }));
  const out = await run(await openSession(modelOf(g), { threads: 1 }), feeds);
  return (w: string) => Array.from(out[grads.get(w)!]!.data as Float32Array);
}

describe("the backward walker", () => {
  test("fan-out: a value used three times gets the sum of its three gradients (one Sum node)", async () => {
    // L = Σ (x·x + exp(x)) , x used by Mul twice (as both inputs) and by Exp: dL/dx = 2x + exp(x)
    const g = new Graph();
    g.initializers.set("x", f32([3], [0.5, -1, 2]));
    const y = g.op("Add", [g.op("Mul", ["x", "x"]), g.op("Exp", ["x"])]);
    const loss = g.op("ReduceSum", [g.op("Add", [y, "x"])], { keepdims: 0 });
    const before = g.nodes.length;
    const grads = appendBackward(g, loss, ["x"]);
    expect(g.nodes.slice(before).filter((n) => n.opType === "Sum")).toHaveLength(1);
    const got = (await evalGrads(g, loss, grads))("x");
    [0.5, -1, 2].forEach((x, i) => {
      expect(got[i]).toBeCloseTo(2 * x + Math.exp(x) + 1, 5);
    });
  });

  test("fan-out through a real network shape: residual block, gradient checked (float64, tol 1e-6)", async () => {
    await expectGradOk(
      {
        inputs: { x: { dims: [2, 4] }, w1: { dims: [4, 4] }, w2: { dims: [4, 4] } },
        build: (g) => {
          const h = g.op("Tanh", [g.op("MatMul", ["x", "w1"])]);
          return g.op("Add", [g.op("MatMul", [h, "w2"]), h]);
        },
        elementwise: 100,
      },
      1e-6,
    );
  });

  test("pruning: nodes off the path to the loss, or not depending on wrt, get no backward nodes", () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: [2, 3] });
    g.initializers.set("w", f32([3, 3], new Float32Array(9).fill(0.1)));
    g.initializers.set("frozen", f32([3], [1, 2, 3]));
    const h = g.op("MatMul", ["x", "w"], {}, { name: "mm" });
    // depends on x only (not on w): needs no gradient
    const side = g.op(
      "Exp",
      [g.op("Mul", ["x", "frozen"], {}, { name: "x_only" })],
      {},
      { name: "x_only_exp" },
    );
    const y = g.op("Add", [h, side], {}, { name: "join" });
    // depends on w but does not reach the loss
    g.op("Sigmoid", [h], {}, { name: "dead_end" });
    const loss = g.op("ReduceSum", [y], { keepdims: 0 }, { name: "loss" });
    const before = g.nodes.length;
    appendBackward(g, loss, ["w"]);
    const emitted = g.nodes.slice(before).map((n) => n.name);
    expect(emitted.some((n) => n.startsWith("dead_end"))).toBe(false);
    expect(emitted.some((n) => n.startsWith("x_only"))).toBe(false);
    expect(emitted.some((n) => n.startsWith("mm_grad"))).toBe(true);
    // only the w side of MatMul: one Gemm, no gradient for x
    expect(
      g.nodes
        .slice(before)
        .filter((n) => n.name.startsWith("mm_grad"))
        .map((n) => n.opType),
    ).toEqual(["Gemm"]);
  });

  test("integer inputs are skipped: Reshape's shape input, a path through a Cast to int", async () => {
    const g = new Graph();
    g.initializers.set("w", f32([2, 3], [1, 2, 3, 4, 5, 6]));
    const flat = g.op("Reshape", ["w", g.constant("shape", i64([1], [-1]))]);
    const asInt = g.op("Cast", [flat], { to: 7 });
    const back = g.op("Cast", [asInt], { to: 1 });
    const loss = g.op("ReduceSum", [g.op("Add", [g.op("Mul", [flat, flat]), back])], { keepdims: 0 });
    const grads = appendBackward(g, loss, ["w"]);
    const got = (await evalGrads(g, loss, grads, {}))("w");
    // the path through the integer Cast carries no gradient: dL/dw = 2w
    expect(got).toEqual([2, 4, 6, 8, 10, 12]);
  });

  test("an op without a rule on the path raises AutodiffError naming the node and op type", () => {
    const g = new Graph();
    g.initializers.set("w", f32([3], [1, 2, 3]));
    const y = g.op("Erf", ["w"], {}, { name: "my_erf" });
    const loss = g.op("ReduceSum", [y], { keepdims: 0 });
    expect(() => appendBackward(g, loss, ["w"])).toThrowError(AutodiffError);
    expect(() => appendBackward(g, loss, ["w"])).toThrowError(/node 'my_erf' \(Erf\).*no gradient rule/);
  });

  test("an op without a rule off the path (only frozen inputs) is fine", () => {
    const g = new Graph();
    g.initializers.set("w", f32([3], [1, 2, 3]));
    g.initializers.set("c", f32([3], [1, 2, 3]));
    const loss = g.op("ReduceSum", [g.op("Mul", ["w", g.op("Erf", ["c"])])], { keepdims: 0 });
    expect(() => appendBackward(g, loss, ["w"])).not.toThrow();
  });

  test("a wrt that does not reach the loss: zeros by default, AutodiffError with unreached: 'error'", async () => {
    const make = () => {
      const g = new Graph();
      g.initializers.set("w", f32([2], [1, 2]));
      g.initializers.set("unused", f32([2, 2], [1, 2, 3, 4]));
      return { g, loss: g.op("ReduceSum", [g.op("Mul", ["w", "w"])], { keepdims: 0 }) };
    };
    const a = make();
    const grads = appendBackward(a.g, a.loss, ["w", "unused"]);
    const get = await evalGrads(a.g, a.loss, grads);
    expect(get("unused")).toEqual([0, 0, 0, 0]);
    expect(get("w")).toEqual([2, 4]);
    const b = make();
    expect(() => appendBackward(b.g, b.loss, ["w", "unused"], { unreached: "error" })).toThrowError(
      /'unused' does not influence/,
    );
  });

  test("a custom seed scales the gradient", async () => {
    const g = new Graph();
    g.initializers.set("w", f32([2], [1, 2]));
    const loss = g.op("ReduceSum", [g.op("Mul", ["w", "w"])], { keepdims: 0 });
    const seed = g.constant("seed", f32([], [0.5]));
    const grads = appendBackward(g, loss, ["w"], { seed });
    expect((await evalGrads(g, loss, grads))("w")).toEqual([1, 2]);
  });

  test("a symbolic batch dim: ReduceMean's count taken at run time, the broadcast bias summed over the batch", async () => {
    const g = new Graph();
    g.inputs.push({ name: "x", dtype: "float32", shape: ["N", 3] });
    g.initializers.set("b", f32([3], [0.1, 0.2, 0.3]));
    const y = g.op("Add", ["x", "b"]);
    const loss = g.op("ReduceMean", [g.op("Mul", [y, y])], { keepdims: 0 });
    const grads = appendBackward(g, loss, ["b"]);
    const x = [1, 2, 3, 4, 5, 6];
    const get = await evalGrads(g, loss, grads, { x: f32([2, 3], x) });
    // d/db mean((x+b)²) = 2 Σ_n (x+b) / (N·3)
    const want = [0, 1, 2].map(
      (j) => (2 * (x[j]! + [0.1, 0.2, 0.3][j]! + (x[j + 3]! + [0.1, 0.2, 0.3][j]!))) / 6,
    );
    get("b").forEach((v, j) => {
      expect(v).toBeCloseTo(want[j]!, 5);
    });
  });

  test("hasGradientRule and supportedOps list what qat can train through", () => {
    for (const op of ["Conv", "MaxPool", "BatchNormalization", "SoftmaxCrossEntropyLoss", "Resize", "Gemm"]) {
      expect(hasGradientRule(op)).toBe(true);
    }
    expect(hasGradientRule("Erf")).toBe(false);
    expect(hasGradientRule("Conv", "com.example")).toBe(false);
    expect(supportedOps()).toContain("HardSwish");
    expect(supportedOps().length).toBeGreaterThanOrEqual(45);
  });
});
