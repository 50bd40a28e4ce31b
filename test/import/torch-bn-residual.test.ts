import { describe, expect, test } from "vitest";
import { compareImportedGradients } from "../../bench/import-grads.js";
import { torchProblem } from "../../bench/torch/python.js";
import { formatComparison } from "../../bench/torch-grads.js";

// A PyTorch conv net with BatchNorm and a residual Add, exported by torch.onnx.export in inference form (into a
// temp dir by bench/torch/export_bn_residual.py), imported by qat and trained: same loss, gradients and BN running
// statistics as PyTorch in train mode for the same batch.
describe("a PyTorch export with BatchNorm and a residual Add trains after import like PyTorch", () => {
  for (const opset of [13, 17]) {
    test(`opset ${opset}: loss, every gradient and BN running statistic within 1e-4 relative error`, async () => {
      const problem = torchProblem();
      if (problem)
        throw new Error(`this test compares against PyTorch (CI installs python3-torch): ${problem}`);
      const c = await compareImportedGradients({ opset, batch: 6 });
      const report = formatComparison(c);
      expect(c.untrained, report).toEqual([]);
      expect(c.grads.map((r) => r.name.split(" ")[0]).sort(), report).toEqual(
        ["stem.weight", "conv2.weight", "conv3.weight", "conv3.bias", "fc.weight", "fc.bias"]
          .concat(["bn1", "bn2", "bn3"].flatMap((b) => [`${b}.weight`, `${b}.bias`]))
          .sort(),
      );
      expect(Math.abs(c.loss.qat - c.loss.torch), report).toBeLessThan(1e-5 * Math.abs(c.loss.torch));
      for (const r of [...c.grads, ...c.buffers]) expect(r.rel, `${r.name}\n${report}`).toBeLessThan(1e-4);
      expect(c.buffers.map((r) => r.name)).toHaveLength(6);
      // the imported inference graph computes what PyTorch's eval mode computes
      expect(c.evalLogits.rel, report).toBeLessThan(1e-5);
    });
  }
});
