// PyTorch's first gradient-descent example — w = 5; loss = (w - 2)²; loss.backward(); w -= 0.1 * w.grad — in qat.
// The loss is recorded as an expression, turned into an ONNX graph, its backward pass appended as more ONNX
// nodes, and both run in ONNX Runtime.
import { expr } from "qat";

const { formatFloat, grad, param, tensor, valueAndGrad } = expr;

const w = param(5.0, [], "w");
const loss = w.sub(2).pow(2);

const [g] = await grad(loss, [w]); // dloss/dw = 2·(w − 2) = 6
console.log(`Gradient: ${formatFloat(g!.data[0] as number)}`);
w.update(g!, 0.1); // w ← w − 0.1·g, in float32 like PyTorch
console.log(`Updated Weight: ${formatFloat(w.item())}`);

// A line through four points, y = 3x + 1: a [1, 1] weight, a bias and the mean squared error.
const x = tensor([0, 1, 2, 3], [4, 1]);
const y = tensor([1, 4, 7, 10], [4, 1]);
const a = param([0], [1, 1], "a");
const b = param(0, [], "b");
const mse = x.matmul(a).add(b).sub(y).pow(2).mean();
for (let step = 1; step <= 500; step++) {
  // the graph and its ONNX Runtime session are built once; each call feeds the current values
  const { value, grads } = await valueAndGrad(mse, [a, b]);
  a.update(grads[0]!, 0.05);
  b.update(grads[1]!, 0.05);
  if (step === 1 || step % 100 === 0) console.log(`step ${step}: mse ${value.toExponential(2)}`);
}
console.log(`a = ${a.item().toFixed(3)}, b = ${b.item().toFixed(3)}`);
