"""A PyTorch conv net with BatchNorm and a residual block, trained in float on MNIST and exported to ONNX (opset 13,
inference form, dynamic batch): "a model the user already ships" for `qat quantize` (issue 15, must-show 1).

usage: /usr/bin/python3 bench/torch/export_mnist_bn_residual.py OUT.onnx --mnist DIR [--seed 0] [--steps 800]
"""
import argparse
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from export_qdq_scale1 import idx


class MnistBnResidual(nn.Module):
    def __init__(self, width=16, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width * 49, classes)

    def forward(self, x):
        y = F.max_pool2d(F.relu(self.bn1(self.stem(x))), 2)
        r = F.relu(self.bn2(self.conv2(y)))
        y = F.relu(y + self.bn3(self.conv3(r)))
        return self.fc(torch.flatten(F.avg_pool2d(y, 2), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--mnist", required=True, help="the folder holding MNIST's IDX .gz files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=800)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    x = idx(os.path.join(a.mnist, "train-images-idx3-ubyte.gz")).float().div(255).unsqueeze(1)
    y = idx(os.path.join(a.mnist, "train-labels-idx1-ubyte.gz")).long()
    m = MnistBnResidual()
    opt = torch.optim.Adam(m.parameters(), lr=0.005)
    m.train()
    for _ in range(a.steps):
        i = torch.randint(0, x.shape[0], (64,))
        loss = F.cross_entropy(m(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    tx = idx(os.path.join(a.mnist, "t10k-images-idx3-ubyte.gz")).float().div(255).unsqueeze(1)
    ty = idx(os.path.join(a.mnist, "t10k-labels-idx1-ubyte.gz")).long()
    with torch.no_grad():
        acc = (m(tx).argmax(1) == ty).float().mean().item()
    print(f"PyTorch float test accuracy: {100 * acc:.2f}%")
    torch.onnx.export(m, torch.rand(1, 1, 28, 28), a.out, opset_version=13, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=False)


if __name__ == "__main__":
    main()
