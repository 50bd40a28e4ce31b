"""A small PyTorch conv net with a residual Add, fake-quantized per tensor with torch.ao.quantization's FakeQuantize
modules (calibrated by their MinMax observers on seeded data) and exported by torch.onnx.export at opset 13: the
QuantizeLinear/DequantizeLinear pairs carry scales and zero points shaped [1] (FakeQuantize keeps its qparams as
1-element tensors), which is what makes ONNX Runtime's QDQ fusion fail with "QLinearAdd: Scale and Zero-point must be
a scalar". The fixture for qat's normalisation of foreign int8 models (test/import/qdq-scalars.test.ts).

usage: /usr/bin/python3 bench/torch/export_qdq_scale1.py OUT.onnx [--seed 0]
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import FakeQuantize, MinMaxObserver


def fq(signed):
    """A per-tensor 8-bit fake quantizer: int8 symmetric for weights, uint8 affine for activations."""
    if signed:
        return FakeQuantize(observer=MinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
                            qscheme=torch.per_tensor_symmetric)
    return FakeQuantize(observer=MinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine)


class QConv(nn.Module):
    """A Conv2d whose weight passes through a per-tensor fake quantizer."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.wq = fq(True)

    def forward(self, x):
        return F.conv2d(x, self.wq(self.conv.weight), self.conv.bias, padding=1)


class QdqResidual(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.inq = fq(False)
        self.c1 = QConv(3, 4)
        self.q1 = fq(False)
        self.c2 = QConv(4, 4)
        self.q2 = fq(False)
        self.qadd = fq(False)
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        x = self.inq(x)
        y = self.q1(F.relu(self.c1(x)))
        r = self.q2(self.c2(y))
        z = self.qadd(y + r)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(z, 1), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    m = QdqResidual().eval()
    # calibrate: the observers see a few batches, then the qparams are frozen
    with torch.no_grad():
        for _ in range(4):
            m(torch.rand(8, 3, 8, 8) * 2 - 1)
    for mod in m.modules():
        if isinstance(mod, FakeQuantize):
            mod.disable_observer()
    torch.onnx.export(m, torch.rand(1, 3, 8, 8), a.out, opset_version=13, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)


if __name__ == "__main__":
    main()
