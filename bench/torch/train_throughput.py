"""Float training throughput of PyTorch on qat's benchmark models (the peer of bench/engine.ts).

usage: train_throughput.py <model> <batch> <threads> <warmup_steps> <windows> <steps_per_window>
Prints one JSON object: {"model", "batch", "threads", "windows": [samples/s...], "forward": [samples/s...]}.
SGD with momentum 0.9, cross-entropy, training mode; the batches are random and prepared before timing.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import INPUT, MODELS, measure  # noqa: E402


def main():
    name, batch, threads, warmup, windows, per = sys.argv[1], *map(int, sys.argv[2:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MODELS[name]()
    model.train()
    xs = [torch.randn((batch,) + INPUT[name]) for _ in range(4)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(4)]
    rates = measure(model, xs, ys, batch, warmup, windows, per)
    fwd = []
    with torch.no_grad():
        for _ in range(windows):
            t0 = time.perf_counter()
            for i in range(per):
                model(xs[i % 4])
            fwd.append(batch * per / (time.perf_counter() - t0))
    print(json.dumps({"model": name, "batch": batch, "threads": threads, "torch": torch.__version__,
                      "windows": rates, "forward": fwd}))


if __name__ == "__main__":
    main()
