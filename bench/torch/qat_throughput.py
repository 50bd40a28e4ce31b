"""QAT training throughput of PyTorch (torch.ao.quantization, FX graph mode) on qat's benchmark models: the peer of
bench/qat-throughput.ts.

usage: qat_throughput.py <model> <batch> <threads> <warmup_steps> <windows> <steps_per_window> [--graph DIR]
(--graph: the folder bench/graph-dump.ts wrote, for twins rebuilt from qat's training graph such as blazeface)
Prints one JSON object: {"model", "batch", "threads", "float": [samples/s...], "qat": [...], "qat_lsq": [...]}.
- float: the plain model.
- qat: prepare_qat_fx with the qconfig closest to qat's ort-cpu preset: uint8 asymmetric activations
  (moving-average min-max observers), int8 symmetric per-channel weights; Conv+BN(+ReLU) fused (BN folded in
  training, as ConvBnReLU2d does), observers active (PyTorch's default QAT setup).
- qat_lsq: the same with _LearnableFakeQuantize (learned scale and zero point with gradient scaling, as LSQ).
SGD with momentum 0.9, training mode; random batches prepared before timing. Loss: cross-entropy, or for models
whose output is not class scores (tiny-det, blazeface) MSE against fixed random targets (models.REGRESSION).
Graph twins (graph_twin.GraphTwin) are traced by prepare_qat_fx like the hand-written ones (graph_twin.py says how).
"""
import copy
import json
import os
import sys

import torch
from torch.ao.quantization import FakeQuantize, QConfig, QConfigMapping
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize
from torch.ao.quantization.observer import MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver
from torch.ao.quantization.quantize_fx import prepare_qat_fx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import batches, build, measure  # noqa: E402


def qconfig(learnable):
    fq = _LearnableFakeQuantize if learnable else FakeQuantize
    extra = {"use_grad_scaling": True} if learnable else {}
    act = fq.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                       qscheme=torch.per_tensor_affine, **extra)
    wt = fq.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
                      qscheme=torch.per_channel_symmetric, ch_axis=0,
                      **({"channel_len": -1} if learnable else {}), **extra)
    return QConfig(activation=act, weight=wt)


def main():
    name, batch, threads, warmup, windows, per = sys.argv[1], *map(int, sys.argv[2:7])
    graph = sys.argv[sys.argv.index("--graph") + 1] if "--graph" in sys.argv else None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base, shape = build(name, graph)
    base.train()
    xs, ys = batches(name, base, shape, batch)
    out = {"model": name, "batch": batch, "threads": threads, "torch": torch.__version__}
    out["float"] = measure(copy.deepcopy(base), xs, ys, batch, warmup, windows, per)
    for key, learnable in (("qat", False), ("qat_lsq", True)):
        m = prepare_qat_fx(copy.deepcopy(base), QConfigMapping().set_global(qconfig(learnable)), (xs[0],))
        if learnable:
            # per-channel learnable quantizers are created with one channel: give each its layer's channel count,
            # let the observers set the starting scales on one batch, then learn them
            for mod in m.modules():
                fq = getattr(mod, "weight_fake_quant", None)
                if isinstance(fq, _LearnableFakeQuantize):
                    c = mod.weight.shape[0]
                    fq.scale = torch.nn.Parameter(torch.ones(c))
                    fq.zero_point = torch.nn.Parameter(torch.zeros(c))
            for mod in m.modules():
                if isinstance(mod, _LearnableFakeQuantize):
                    mod.toggle_qparam_learning(False).toggle_observer_update(True)
            m(xs[0])
            for mod in m.modules():
                if isinstance(mod, _LearnableFakeQuantize):
                    mod.toggle_qparam_learning(True).toggle_observer_update(False)
        out[key] = measure(m, xs, ys, batch, warmup, windows, per)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
