"""Peak resident memory of PyTorch training steps: the peer of bench/step-rss.ts.

usage: step_rss.py <model> <batch> <threads> <float|qat> [--graph DIR]
Runs 5 SGD (momentum 0.9) steps of the model (cross-entropy, or MSE for models.REGRESSION; --graph as in
qat_throughput.py; qat: FX QAT as in qat_throughput.py) in a fresh
process and prints one JSON object {"model", "batch", "kind", "base_mb", "peak_mb"}: the process's peak RSS
(ru_maxrss) before building the model and after the steps.
"""
import copy
import json
import os
import resource
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import batches, build, measure  # noqa: E402


def main():
    name, batch, threads, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(threads)
    graph = sys.argv[sys.argv.index("--graph") + 1] if "--graph" in sys.argv else None
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.manual_seed(0)
    model, shape = build(name, graph)
    model.train()
    xs, ys = batches(name, model, shape, batch)
    if kind not in ("float", "qat"):
        sys.exit(f"kind must be float or qat, got {kind}")
    if kind == "qat":
        from torch.ao.quantization import QConfigMapping
        from torch.ao.quantization.quantize_fx import prepare_qat_fx

        from qat_throughput import qconfig
        model = prepare_qat_fx(copy.deepcopy(model), QConfigMapping().set_global(qconfig(False)), (xs[0],))
    measure(model, xs, ys, batch, 5, 0, 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"model": name, "batch": batch, "kind": kind, "base_mb": round(base), "peak_mb": round(peak)}))


if __name__ == "__main__":
    main()
