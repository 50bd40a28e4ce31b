"""PyTorch's QAT of a zoo architecture, exported to a QDQ ONNX model: the peer of `qat export` in bench/export.ts.

FX graph-mode QAT (torch.ao.quantization.quantize_fx.prepare_qat_fx) with the default QAT qconfig (version 0) of a
quantized engine (qnnpack: per-tensor weights; onednn: per-channel weights), a few SGD steps on random 0-255 images (the
latency of the exported model does not depend on what it learned), then torch.onnx.export of the fake-quantized
model: its FakeQuantize modules become QuantizeLinear/DequantizeLinear pairs. The input is normalised inside the
graph as in qat's models ((x - mean) / std on raw pixels), batch dimension dynamic.

usage: /usr/bin/python3 bench/torch/export_cifar_qat.py OUT.onnx [--model cifar-cnn] [--engine qnnpack|onednn]
       [--steps 20] [--seed 0] [--opset 13]
prints one JSON line: {"out", "engine", "torch", "opset", "steps"}
"""
import argparse
import json
import warnings

import torch
from torch import nn
from torch.ao.quantization import QConfigMapping, disable_observer, get_default_qat_qconfig
from torch.ao.quantization.quantize_fx import prepare_qat_fx

from models import INPUT, MODELS


class Normalized(nn.Module):
    def __init__(self, net, mean=127.0, std=70.0):
        super().__init__()
        self.net = net
        self.mean = mean
        self.inv_std = 1.0 / std

    def forward(self, x):
        return self.net((x - self.mean) * self.inv_std)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--model", default="cifar-cnn")
    p.add_argument("--engine", default="qnnpack", choices=["qnnpack", "onednn"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--opset", type=int, default=13)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.backends.quantized.engine = a.engine
    shape = INPUT[a.model]
    model = Normalized(MODELS[a.model]()).train()
    example = (torch.rand(2, *shape) * 255,)
    # version 0: FakeQuantize modules (the fused observer+fake-quant op of version 1 has no ONNX export)
    qconfig = get_default_qat_qconfig(a.engine, version=0)
    prepared = prepare_qat_fx(model, QConfigMapping().set_global(qconfig), example)
    opt = torch.optim.SGD(prepared.parameters(), lr=0.01, momentum=0.9)
    for _ in range(a.steps):
        x = torch.floor(torch.rand(32, *shape) * 256)
        y = torch.randint(0, 10, (32,))
        loss = nn.functional.cross_entropy(prepared(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    prepared.eval()
    # scales frozen as learned: an observer would update them in forward (an in-place copy ONNX cannot express)
    prepared.apply(disable_observer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            prepared,
            example,
            a.out,
            opset_version=a.opset,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    print(json.dumps({"out": a.out, "engine": a.engine, "torch": torch.__version__, "opset": a.opset, "steps": a.steps}))


if __name__ == "__main__":
    main()
