"""A small PyTorch conv net with BatchNorm and a residual Add, exported to ONNX in inference form, plus PyTorch's
training-mode loss, gradients and BN running statistics for one batch: the reference qat's import is checked
against (test/import/torch-bn-residual.test.ts).

usage: /usr/bin/python3 bench/torch/export_bn_residual.py OUT_DIR [--opset 13] [--seed 0] [--batch 6] [--size 8]
writes OUT_DIR/bn_residual.onnx and OUT_DIR/reference.json
"""
import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class BnResidual(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        y = F.relu(self.bn1(self.stem(x)))
        r = F.relu(self.bn2(self.conv2(y)))
        r = self.bn3(self.conv3(r))
        y = F.relu(y + r)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--size", type=int, default=8, help="input height and width (the throughput bench uses 32)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = BnResidual()
    # trained-looking BN state, so that importing the running statistics and affine parameters is really tested
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.num_batches_tracked.fill_(100)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "bn_residual.onnx")
    x = torch.rand(a.batch, 3, a.size, a.size) * 255.0 - 100.0
    labels = torch.randint(0, 10, (a.batch,))

    # inference form: BatchNormalization nodes without training outputs; no Conv+BN fusion, so BN stays a layer
    model.eval()
    torch.onnx.export(
        model,
        x,
        path,
        opset_version=a.opset,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    with torch.no_grad():
        eval_logits = model(x)

    # the reference: train mode (batch statistics), float64 from the same float32 values
    ref = BnResidual().double()
    ref.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    ref.train()
    logits = ref(x.double())
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out = {
        "torch": torch.__version__,
        "opset": a.opset,
        "x": {"dims": list(x.shape), "data": x.flatten().tolist()},
        "labels": labels.tolist(),
        "eval_logits": eval_logits.flatten().tolist(),
        "loss": loss.item(),
        "grads": {k: p.grad.flatten().tolist() for k, p in ref.named_parameters()},
        "buffers": {k: b.flatten().tolist() for k, b in ref.named_buffers()},
    }
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(out, f)
    print(path)


if __name__ == "__main__":
    main()
