"""A PyTorch twin of a qat network rebuilt from its dumped training graph: the peer of imported models (BlazeFace)
that have no hand-written twin in models.py.

bench/graph-dump.ts writes DIR/graph.json (nodes with op type, inputs, outputs and attributes; the input and output
with their per-sample shapes; which initializers qat trains, `net.params`, and which are BN buffers; BN momentums)
and one .npy per initializer. The graph is qat's `net.train`, the one its training step differentiates: BN in
training mode, Dropout active, an imported multi-output model's outputs flattened into one [batch, N] value.

GraphTwin interprets it: only the nodes the output depends on (the BN running-statistics update nodes are left to
PyTorch's own BatchNorm2d, with the dumped momentum), each with torch ops. Conv becomes nn.Conv2d, training-mode
BatchNormalization nn.BatchNorm2d and Gemm with a [out, in] weight nn.Linear, so that FX's QAT sees the same
Conv → BN → ReLU patterns as in a hand-written model; every other op is functional. Values qat trains become
trainable nn.Parameters, the other initializers frozen parameters or buffers; int64 shapes, axes and pads become
Python constants. An op it lacks stops the build with a GraphTwinError naming the node.

QAT: forward() runs a fixed list of steps with no data-dependent control flow, so torch.fx traces it into a flat
graph and prepare_qat_fx quantizes it exactly like the hand-written twins (qat_throughput.py): no eager-mode
fallback is needed.

usage: graph_twin.py check DIR MODEL graph|module
  The forward check of bench/twin-check.ts: DIR holds the dump, x.npy (the batch) and y.npy (qat's training-mode
  output). "graph" runs GraphTwin on x; "module" loads the dumped parameters and buffers into models.py's twin of
  MODEL (x is then the normalised input). Prints {"max_abs_diff", "max_abs_output", "shape"}.
"""
import json
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class GraphTwinError(Exception):
    pass


# inputs read as Python constants (shapes, axes, pads, bounds), by op and input position
STATIC = {"Reshape": {1}, "Pad": {1, 2, 3}, "Resize": {1, 2, 3}, "Clip": {1, 2}, "Slice": {1, 2, 3, 4},
          "Squeeze": {1}, "Unsqueeze": {1}, "Dropout": {1, 2}, "ReduceMean": {1}, "ReduceSum": {1}}
BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "MatMul": torch.matmul}
UNARY = {"Relu": F.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "HardSwish": F.hardswish,
         "Softplus": F.softplus, "Exp": torch.exp, "Log": torch.log, "Sqrt": torch.sqrt, "Neg": torch.neg,
         "Abs": torch.abs, "Identity": lambda x: x, "GlobalAveragePool": lambda x: F.adaptive_avg_pool2d(x, 1)}


def _key(i, name):
    return f"n{i}_" + re.sub(r"\W", "_", name)[-40:]


def _needed(nodes, output):
    """The nodes `output` depends on, in graph order."""
    want, keep = {output}, []
    for n in reversed(nodes):
        if any(o in want for o in n["outputs"]):
            keep.append(n)
            want.update(i for i in n["inputs"] if i)
    return keep[::-1]


class GraphTwin(nn.Module):
    @classmethod
    def load(cls, folder):
        with open(os.path.join(folder, "graph.json")) as f:
            spec = json.load(f)
        arrays = {k: np.load(os.path.join(folder, v)) for k, v in spec["tensors"].items()}
        return cls(spec, arrays)

    def __init__(self, spec, arrays):
        super().__init__()
        self.name, self.input, self.output = spec["name"], spec["input"], spec["output"]
        self.input_shape, self.output_shape = spec["input_shape"], spec["output_shape"]
        self.mods = nn.ModuleDict()
        self.weights = nn.ParameterDict()
        self.consts = nn.Module()
        self.steps = []
        self._params = set(spec["params"])
        self._arrays = dict(arrays)
        self._momentum = spec.get("bn_momentum", {})
        self._shapes = spec.get("shapes", {})
        nodes = _needed(spec["nodes"], self.output)
        for n in nodes:
            if n["op"] == "Constant":
                self._arrays[n["outputs"][0]] = arrays[n["attrs"]["value"]["tensor"]]
        uses = {}
        for n in nodes:
            for i in n["inputs"]:
                uses[i] = uses.get(i, 0) + 1
        self._uses, self._param_keys = uses, {}
        for i, n in enumerate(nodes):
            if n["op"] == "Constant":
                continue
            for o in n["outputs"][1:]:
                if o in uses:
                    raise GraphTwinError(f"node {n['name']} ({n['op']}): its output {o!r} is used, only the first "
                                         "output of a node is supported")
            self.steps.append(self._plan(i, n))
        del self._arrays, self._uses, self._shapes, self._param_keys

    # ---- building ------------------------------------------------------------------------------------------------

    def _tensor(self, name, trainable=None):
        t = torch.from_numpy(np.array(self._arrays[name]))
        if trainable is None:
            trainable = name in self._params
        return nn.Parameter(t, requires_grad=trainable) if t.is_floating_point() else t

    def _own(self, name, node):
        """A parameter held by a module: it must be used by this node only (no weight sharing)."""
        if name not in self._arrays:
            raise GraphTwinError(f"node {node['name']} ({node['op']}): {name!r} must be an initializer")
        if name in self._params and self._uses.get(name, 0) > 1:
            raise GraphTwinError(f"node {node['name']}: parameter {name!r} is shared by several nodes")
        return self._tensor(name, name in self._params)

    def _arg(self, i, pos, name, node):
        """How forward() gets input `pos` of a node: a computed value, a parameter, a constant or a Python value."""
        op = node["op"]
        if not name:
            return ("py", None)
        if name not in self._arrays:
            if pos in STATIC.get(op, ()):
                raise GraphTwinError(f"node {node['name']} ({op}): input {pos} ({name!r}) must be a constant")
            return ("env", name)
        a = self._arrays[name]
        if pos in STATIC.get(op, ()):
            return ("py", a.tolist())
        key = _key(i, f"{pos}_{name}")
        if name in self._params:
            # one nn.Parameter per trained value, however many functional nodes read it
            if name not in self._param_keys:
                self.weights[key] = self._tensor(name)
                self._param_keys[name] = key
            return ("param", self._param_keys[name])
        self.consts.register_buffer(key, torch.from_numpy(np.array(a)))
        return ("const", key)

    def _plan(self, i, n):
        op, a, name = n["op"], n["attrs"], n["name"]
        key = _key(i, name)
        ins = n["inputs"]
        # the first input's rank where shape inference knew it (ops that need it do not call x.dim(), which FX
        # cannot trace)
        rank = len(self._shapes[ins[0]]) if ins and ins[0] in self._shapes else None
        step = {"op": op, "name": name, "key": key, "out": n["outputs"][0], "a": {}, "rank": rank}
        builder = getattr(self, "_build_" + op, None)
        if builder is not None:
            builder(step, n, key)
            step["args"] = [self._arg(i, 0, ins[0], n)]
            return step
        if op not in BINARY and op not in UNARY and not hasattr(self, "_op_" + op):
            raise GraphTwinError(f"node {name}: op {op} is not supported by graph_twin.py")
        step["a"] = a
        step["args"] = [self._arg(i, p, v, n) for p, v in enumerate(ins)]
        return step

    def _build_Conv(self, step, n, key):
        a, ins = n["attrs"], n["inputs"]
        w = self._own(ins[1], n)
        if w.dim() != 4:
            raise GraphTwinError(f"node {n['name']}: Conv with a {w.dim()}-d weight (only 2-d convolutions)")
        pads = a.get("pads", [0, 0, 0, 0])
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise GraphTwinError(f"node {n['name']}: Conv auto_pad {a['auto_pad']} (explicit pads only)")
        symmetric = pads[0] == pads[2] and pads[1] == pads[3]
        conv = nn.Conv2d(w.shape[1] * a.get("group", 1), w.shape[0], tuple(w.shape[2:]),
                         stride=tuple(a.get("strides", [1, 1])), padding=(pads[0], pads[1]) if symmetric else 0,
                         dilation=tuple(a.get("dilations", [1, 1])), groups=a.get("group", 1),
                         bias=len(ins) > 2 and bool(ins[2]))
        conv.weight = w
        if conv.bias is not None:
            conv.bias = self._own(ins[2], n)
        self.mods[key] = conv
        # asymmetric pads: F.pad first ([left, right, top, bottom])
        step["a"] = {} if symmetric else {"pad": [pads[1], pads[3], pads[0], pads[2]]}

    def _build_BatchNormalization(self, step, n, key):
        a, ins = n["attrs"], n["inputs"]
        scale = self._own(ins[1], n)
        bn = nn.BatchNorm2d(scale.shape[0], eps=a.get("epsilon", 1e-5),
                            momentum=self._momentum.get(n["name"], 0.1))
        bn.weight, bn.bias = scale, self._own(ins[2], n)
        with torch.no_grad():
            bn.running_mean.copy_(torch.from_numpy(np.array(self._arrays[ins[3]])))
            bn.running_var.copy_(torch.from_numpy(np.array(self._arrays[ins[4]])))
        self.mods[key] = bn
        # an inference-mode node (an eval graph) normalises with the running statistics even in training
        step["a"] = {"training": bool(a.get("training_mode", 0))}

    def _build_Gemm(self, step, n, key):
        a, ins = n["attrs"], n["inputs"]
        plain = a.get("alpha", 1.0) == 1 and a.get("beta", 1.0) == 1 and not a.get("transA", 0)
        if not (plain and a.get("transB", 0) == 1 and ins[1] in self._arrays):
            raise GraphTwinError(f"node {n['name']}: Gemm other than x · Wᵀ + b with a constant W")
        w = self._own(ins[1], n)
        lin = nn.Linear(w.shape[1], w.shape[0], bias=len(ins) > 2 and bool(ins[2]))
        lin.weight = w
        if lin.bias is not None:
            lin.bias = self._own(ins[2], n)
        self.mods[key] = lin

    # ---- running -------------------------------------------------------------------------------------------------

    def _value(self, arg, env):
        kind, v = arg
        if kind == "env":
            return env[v]
        if kind == "param":
            return self.weights[v]
        if kind == "const":
            return getattr(self.consts, v)
        return v

    def forward(self, x):
        env = {self.input: x}
        for st in self.steps:
            args = [self._value(a, env) for a in st["args"]]
            op = st["op"]
            if op in BINARY:
                env[st["out"]] = BINARY[op](*args)
            elif op in UNARY:
                env[st["out"]] = UNARY[op](args[0])
            else:
                env[st["out"]] = getattr(self, "_op_" + op)(st, *args)
        return env[self.output]

    @staticmethod
    def _rank(st, x):
        return x.dim() if st["rank"] is None else st["rank"]

    def _op_Conv(self, st, x):
        if "pad" in st["a"]:
            x = F.pad(x, st["a"]["pad"])
        return self.mods[st["key"]](x)

    def _op_BatchNormalization(self, st, x):
        bn = self.mods[st["key"]]
        if st["a"]["training"]:
            return bn(x)
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    def _op_Gemm(self, st, x):
        return self.mods[st["key"]](x)

    def _op_LeakyRelu(self, st, x):
        return F.leaky_relu(x, st["a"].get("alpha", 0.01))

    def _op_PRelu(self, st, x, slope):
        return F.relu(x) - slope * F.relu(-x)

    def _op_HardSigmoid(self, st, x):
        return torch.clamp(x * st["a"].get("alpha", 0.2) + st["a"].get("beta", 0.5), 0, 1)

    def _op_Clip(self, st, x, lo=None, hi=None):
        lo = st["a"].get("min") if lo is None else lo
        hi = st["a"].get("max") if hi is None else hi
        if lo == 0 and hi == 6:
            return F.relu6(x)
        return torch.clamp(x, lo, hi)

    def _pool_args(self, st, x, fill):
        a = st["a"]
        k = a["kernel_shape"]
        pads = a.get("pads", [0] * 2 * len(k))
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise GraphTwinError(f"node {st['name']}: pooling auto_pad {a['auto_pad']} (explicit pads only)")
        if pads[:2] != pads[2:]:
            x, pads = F.pad(x, [pads[1], pads[3], pads[0], pads[2]], value=fill), [0, 0, 0, 0]
        return x, k, a.get("strides", [1] * len(k)), pads[:2], bool(a.get("ceil_mode", 0))

    def _op_MaxPool(self, st, x):
        x, k, s, p, ceil = self._pool_args(st, x, float("-inf"))
        return F.max_pool2d(x, k, s, p, st["a"].get("dilations", [1, 1]), ceil_mode=ceil)

    def _op_AveragePool(self, st, x):
        x, k, s, p, ceil = self._pool_args(st, x, 0.0)
        return F.avg_pool2d(x, k, s, p, ceil, bool(st["a"].get("count_include_pad", 0)))

    def _op_Flatten(self, st, x):
        axis = st["a"].get("axis", 1)
        return torch.flatten(x, axis) if axis == 1 else x.reshape(int(np.prod(x.shape[:axis])), -1)

    def _op_Reshape(self, st, x, shape):
        return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(shape)])

    def _op_Transpose(self, st, x):
        return x.permute(st["a"].get("perm") or list(range(self._rank(st, x)))[::-1])

    def _op_Concat(self, st, *xs):
        return torch.cat(xs, st["a"]["axis"])

    def _op_Softmax(self, st, x):
        return torch.softmax(x, st["a"].get("axis", -1))

    def _op_Squeeze(self, st, x, axes=None):
        axes = st["a"].get("axes") if axes is None else axes
        for d in sorted((d % self._rank(st, x) for d in axes), reverse=True):
            x = x.squeeze(d)
        return x

    def _op_Unsqueeze(self, st, x, axes=None):
        axes = st["a"].get("axes") if axes is None else axes
        for d in sorted(axes):
            x = x.unsqueeze(d)
        return x

    def _op_Pad(self, st, x, pads=None, value=None, axes=None):
        if axes is not None:
            raise GraphTwinError(f"node {st['name']}: Pad with axes")
        pads = st["a"].get("pads") if pads is None else pads
        value = st["a"].get("value", 0.0) if value is None else (value[0] if isinstance(value, list) else value)
        rank = len(pads) // 2
        flat = []
        for d in reversed(range(rank)):
            flat += [pads[d], pads[d + rank]]
        while len(flat) > 2 and flat[-2:] == [0, 0]:
            flat = flat[:-2]
        mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[st["a"].get("mode", "constant")]
        return F.pad(x, flat, mode, value) if mode == "constant" else F.pad(x, flat, mode)

    def _op_Slice(self, st, x, starts, ends, axes=None, steps=None):
        axes = list(range(len(starts))) if axes is None else axes
        index = [slice(None)] * self._rank(st, x)
        for j, d in enumerate(axes):
            index[d] = slice(starts[j], ends[j], 1 if steps is None else steps[j])
        return x[tuple(index)]

    def _op_Resize(self, st, x, roi=None, scales=None, sizes=None):
        a = st["a"]
        mode, ct = a.get("mode", "nearest"), a.get("coordinate_transformation_mode", "half_pixel")
        size = sizes[2:] if sizes else None
        factor = None if size else [float(s) for s in scales[2:]]
        if mode == "nearest" and ct == "asymmetric" and a.get("nearest_mode", "round_prefer_floor") == "floor":
            return F.interpolate(x, size=size, scale_factor=factor, mode="nearest")
        if mode == "linear" and ct in ("align_corners", "half_pixel", "pytorch_half_pixel"):
            return F.interpolate(x, size=size, scale_factor=factor, mode="bilinear",
                                 align_corners=ct == "align_corners")
        raise GraphTwinError(f"node {st['name']}: Resize mode {mode} with {ct} is not supported")

    def _op_Dropout(self, st, x, ratio=None, training=None):
        p = st["a"].get("ratio", 0.5) if ratio is None else float(ratio)
        return F.dropout(x, p, self.training and (training is None or bool(training)))

    def _reduce(self, st, x, axes, fn):
        axes = st["a"].get("axes") if axes is None else axes
        keep = bool(st["a"].get("keepdims", 1))
        return fn(x, dim=list(range(self._rank(st, x))) if axes is None else axes, keepdim=keep)

    def _op_ReduceMean(self, st, x, axes=None):
        return self._reduce(st, x, axes, torch.mean)

    def _op_ReduceSum(self, st, x, axes=None):
        return self._reduce(st, x, axes, torch.sum)


def _module_twin(name, folder):
    """models.py's twin of `name` with the dumped parameters and buffers (every one must find its place)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from models import MODELS

    with open(os.path.join(folder, "graph.json")) as f:
        spec = json.load(f)
    model = MODELS[name]()
    state = {k: torch.from_numpy(np.array(np.load(os.path.join(folder, spec["tensors"][k]))))
             for k in spec["params"] + spec["buffers"]}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise GraphTwinError(f"{name}: qat's state_dict does not fit the twin: missing {missing}, "
                             f"unexpected {unexpected}")
    return model


def check(folder, name, kind):
    torch.manual_seed(0)
    model = GraphTwin.load(folder) if kind == "graph" else _module_twin(name, folder)
    model.train()
    for f in ("x.npy", "y.npy"):
        if not os.path.exists(os.path.join(folder, f)):
            raise GraphTwinError(f"{folder} has no {f}: bench/twin-check.ts writes the batch and qat's output")
    x = torch.from_numpy(np.load(os.path.join(folder, "x.npy")))
    want = torch.from_numpy(np.load(os.path.join(folder, "y.npy")))
    with torch.no_grad():
        got = model(x)
    if tuple(got.shape) != tuple(want.shape):
        raise GraphTwinError(f"{name}: the twin's output is {list(got.shape)}, qat's {list(want.shape)}")
    print(json.dumps({"model": name, "twin": kind, "shape": list(got.shape),
                      "max_abs_diff": float((got - want).abs().max()), "max_abs_output": float(want.abs().max())}))


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "check" or sys.argv[4] not in ("graph", "module"):
        sys.exit("usage: graph_twin.py check DIR MODEL graph|module")
    try:
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    except GraphTwinError as e:
        sys.exit(f"graph_twin: {e}")
