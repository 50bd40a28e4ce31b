"""A small PyTorch conv net with a residual Add, fake-quantized per tensor with torch.ao.quantization's FakeQuantize
modules (calibrated by their MinMax observers on seeded data) and exported by torch.onnx.export at opset 13: the
QuantizeLinear/DequantizeLinear pairs carry scales and zero points shaped [1] (FakeQuantize keeps its qparams as
1-element tensors), which is what makes ONNX Runtime's QDQ fusion fail with "QLinearAdd: Scale and Zero-point must be
a scalar". The fixture for qat's normalisation of foreign int8 models (test/import/qdq-scalars.test.ts).

With --mnist DIR (the folder holding MNIST's IDX .gz files) the net takes 1x28x28 MNIST digits and 10 classes and is
trained with its fake quantizers on (QAT, 600 steps of Adam) before export: a foreign int8 model with a real
accuracy, for validating such a model on a board (test/toolchain/device.test.ts).

usage: /usr/bin/python3 bench/torch/export_qdq_scale1.py OUT.onnx [--seed 0] [--mnist DIR]
"""
import gzip
import os
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
    def __init__(self, cin=3, width=4, classes=4, pool=1):
        super().__init__()
        self.pool = pool
        self.inq = fq(False)
        self.c1 = QConv(cin, width)
        self.q1 = fq(False)
        self.c2 = QConv(width, width)
        self.q2 = fq(False)
        self.qadd = fq(False)
        self.fc = nn.Linear(width * pool * pool, classes)

    def forward(self, x):
        x = self.inq(x)
        y = self.q1(F.relu(self.c1(x)))
        r = self.q2(self.c2(y))
        z = self.qadd(y + r)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(z, self.pool), 1))


def idx(path):
    """An IDX file (gzip) as a uint8 tensor of its dims."""
    with gzip.open(path, "rb") as f:
        b = f.read()
    ndim = b[3]
    dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(b[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def train_mnist(m, folder, steps=600, batch=64):
    """QAT on MNIST train: observers follow the data for the first third, then the qparams are frozen."""
    x = idx(os.path.join(folder, "train-images-idx3-ubyte.gz")).float().div(255).unsqueeze(1)
    y = idx(os.path.join(folder, "train-labels-idx1-ubyte.gz")).long()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    m.train()
    for step in range(steps):
        if step == steps // 3:
            for mod in m.modules():
                if isinstance(mod, FakeQuantize):
                    mod.disable_observer()
        i = torch.randint(0, x.shape[0], (batch,))
        loss = F.cross_entropy(m(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mnist", help="train on MNIST (1x28x28, 10 classes) from this folder of IDX .gz files")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    if a.mnist:
        m = QdqResidual(cin=1, width=16, classes=10, pool=4)
        train_mnist(m, a.mnist)
        example = torch.rand(1, 1, 28, 28)
    else:
        m = QdqResidual().eval()
        # calibrate: the observers see a few batches, then the qparams are frozen
        with torch.no_grad():
            for _ in range(4):
                m(torch.rand(8, 3, 8, 8) * 2 - 1)
        for mod in m.modules():
            if isinstance(mod, FakeQuantize):
                mod.disable_observer()
        example = torch.rand(1, 3, 8, 8)
    torch.onnx.export(m, example, a.out, opset_version=13, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)


if __name__ == "__main__":
    main()
