import { describe, expect, test } from "vitest";
import { torchProblem } from "../../bench/torch/python.js";
import { compareGradients, formatComparison } from "../../bench/torch-grads.js";

// qat's gradients (autodiff emitted as ONNX, run by ORT) against PyTorch's, same weights and batch.
describe("gradients equal PyTorch's", () => {
  const cases: [string, number][] = [
    ["mnist-cnn", 0],
    ["resnet8", 0],
    ["cifar-cnn", 0],
    ["lenet5", 0],
    // depthwise and strided convs, BN, ReLU6 (dropout off on both sides)
    ["mobilenet-tiny", 0],
    ["mnist-cnn", 0.1],
  ];
  for (const [model, labelSmoothing] of cases) {
    const label = labelSmoothing ? ` with label smoothing ${labelSmoothing}` : "";
    test(`${model}${label}: every parameter's gradient and BN buffer within 1e-4 relative error`, async () => {
      const problem = torchProblem();
      if (problem)
        throw new Error(`this test compares against PyTorch (CI installs python3-torch): ${problem}`);
      const c = await compareGradients(model, { batch: 8, labelSmoothing });
      const report = formatComparison(c);
      expect(Math.abs(c.loss.qat - c.loss.torch), report).toBeLessThan(1e-5 * Math.abs(c.loss.torch) + 1e-6);
      expect(c.grads.length).toBeGreaterThan(0);
      // a gradient that nearly cancels to zero (mobilenet-tiny's BN scales behind ReLU6: max 2e-6 against 0.2
      // elsewhere) is compared at float32 resolution of the model's gradients instead: 1e-6 of the largest
      const floor = 1e-6 * Math.max(...c.grads.map((r) => r.maxAbsTorch));
      for (const r of [...c.grads, ...c.buffers]) {
        if (r.maxAbsDiff < floor) continue;
        expect(r.rel, `${r.name}\n${report}`).toBeLessThan(1e-4);
      }
      // the gradients are not trivially zero
      for (const r of c.grads) expect(r.maxAbsTorch, r.name).toBeGreaterThan(0);
    });
  }
});
