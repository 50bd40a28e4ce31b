/**
 * The seed example: gradient descent on one weight, the way the PyTorch tutorial does it —
 *
 *   w = torch.tensor(5.0, requires_grad=True)
 *   loss = (w - 2) ** 2
 *   loss.backward()                 # Gradient: 6.0
 *   with torch.no_grad(): w -= 0.1 * w.grad
 *   print(w.item())                 # Updated Weight: 4.400000095367432
 *
 * — except that qat builds the loss as an ONNX graph, appends the backward pass as more ONNX nodes and runs both
 * in ONNX Runtime. Run: npm run build && node dist/examples/gradient-descent.js
 */
import { pathToFileURL } from "node:url";
import { expr } from "qat";

const { formatFloat, grad, param, valueAndGrad } = expr;

/** Run the example, printing through `print`; returns the lines printed. */
export async function main(print: (line: string) => void = console.log): Promise<string[]> {
  const lines: string[] = [];
  const say = (s: string) => {
    lines.push(s);
    print(s);
  };
  const w = param(5.0, [], "w");
  const loss = w.sub(2).pow(2);

  const [g] = await grad(loss, [w]);
  say(`Gradient: ${formatFloat(g!.data[0] as number)}`);
  w.update(g!, 0.1);
  say(`Updated Weight: ${formatFloat(w.item())}`);

  // keep descending: w → 2 (each step multiplies the distance to 2 by 0.8)
  say("Descent:");
  for (let step = 2; step <= 100; step++) {
    const { value, grads } = await valueAndGrad(loss, [w]);
    w.update(grads[0]!, 0.1);
    if (step <= 5 || step % 20 === 0)
      say(`  step ${String(step).padStart(3)}  loss ${value.toExponential(3)}  w ${w.item()}`);
    if (value < 1e-12) {
      say(`  converged after ${step} steps: w = ${w.item()}`);
      break;
    }
  }
  return lines;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) await main();
