"""Learning rates of torch.optim.lr_scheduler, one scheduler.step() per optimizer step.

stdin: JSON {"specs": [qat ScheduleSpec...], "steps": n}; stdout: JSON list of lists of lr (one list per spec).
"""
import json
import sys

import torch


def scheduler(spec, opt):
    k = spec["kind"]
    S = torch.optim.lr_scheduler
    if k == "constant":
        return S.LambdaLR(opt, lambda t: 1.0)
    if k == "step":
        return S.StepLR(opt, spec["stepSize"], spec.get("gamma", 0.1))
    if k == "cosine":
        return S.CosineAnnealingLR(opt, spec["tMax"], spec.get("etaMin", 0))
    if k == "warmup":
        warm = S.LinearLR(opt, spec.get("startFactor", 1 / 3), 1.0, spec["steps"])
        if "after" not in spec:
            return warm
        return S.SequentialLR(opt, [warm, scheduler(spec["after"], opt)], [spec["steps"]])
    if k == "one-cycle":
        return S.OneCycleLR(
            opt,
            spec["maxLr"],
            total_steps=spec["totalSteps"],
            pct_start=spec.get("pctStart", 0.3),
            anneal_strategy=spec.get("anneal", "cos"),
            div_factor=spec.get("divFactor", 25.0),
            final_div_factor=spec.get("finalDivFactor", 1e4),
            cycle_momentum=False,
        )
    raise ValueError(k)


def lr_of(spec):
    return spec["maxLr"] if spec["kind"] == "one-cycle" else spec["lr"]


def main():
    req = json.load(sys.stdin)
    out = []
    for spec in req["specs"]:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr_of(spec))
        sch = scheduler(spec, opt)
        lrs = []
        for _ in range(req["steps"]):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        out.append(lrs)
    print(json.dumps(out))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    main()
