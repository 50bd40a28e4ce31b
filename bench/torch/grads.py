"""Gradients of PyTorch on weights and a batch exported by qat (bench/torch-grads.ts).

usage: grads.py <dir>. <dir>/meta.json: {"model", "state": [{"name", "dims", "dtype"}], "batch": n,
"labelSmoothing"}; raw little-endian files <dir>/<name>.bin for each state entry, x.bin (float32) and labels.bin
(int64). Writes <dir>/torch/<param>.grad.bin, <dir>/torch/<buffer>.bin (after one training-mode forward) and
prints {"loss": ...} on stdout.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import INPUT, MODELS  # noqa: E402


def main():
    d = sys.argv[1]
    meta = json.load(open(os.path.join(d, "meta.json")))
    torch.set_num_threads(1)
    model = MODELS[meta["model"]]()
    sd = {}
    for e in meta["state"]:
        dtype = np.int64 if e["dtype"] == "int64" else np.float32
        a = np.fromfile(os.path.join(d, e["name"] + ".bin"), dtype=dtype).reshape(e["dims"])
        sd[e["name"]] = torch.from_numpy(a)
    model.load_state_dict(sd, strict=True)
    n = meta["batch"]
    x = torch.from_numpy(np.fromfile(os.path.join(d, "x.bin"), dtype=np.float32).reshape((n,) + INPUT[meta["model"]]))
    y = torch.from_numpy(np.fromfile(os.path.join(d, "labels.bin"), dtype=np.int64))
    model.train()
    if meta.get("dropoutOff"):
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=meta.get("labelSmoothing", 0.0))
    loss.backward()
    out = os.path.join(d, "torch")
    os.makedirs(out, exist_ok=True)
    for name, p in model.named_parameters():
        p.grad.detach().numpy().astype(np.float32).tofile(os.path.join(out, name + ".grad.bin"))
    for name, b in model.named_buffers():
        b.detach().numpy().tofile(os.path.join(out, name + ".bin"))
    print(json.dumps({"loss": loss.item()}))


if __name__ == "__main__":
    main()
