"""PyTorch twins of qat's zoo models, with the same state_dict keys (see src/nn/zoo.ts)."""
import time

import torch
from torch import nn


class MnistCnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(784, classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class CifarCnn(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(4096, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = nn.functional.max_pool2d(x, 2)
        x = torch.relu(self.conv4(torch.relu(self.conv3(x))))
        x = torch.flatten(nn.functional.max_pool2d(x, 2), 1)
        return self.fc2(torch.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + s)


class ResNet8(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class LeNet5(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(torch.relu(self.fc2(x)))


class DwBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.dw_bn = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = nn.functional.relu6(self.dw_bn(self.dw(x)))
        return nn.functional.relu6(self.pw_bn(self.pw(x)))


class Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)

    def forward(self, x):
        return nn.functional.relu6(self.bn(self.conv(x)))


class MobileNetTiny(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = Stem()
        plan, cin, blocks = [(32, 2), (64, 2), (128, 2), (128, 1)], 16, []
        for out, stride in plan:
            blocks.append(DwBlock(cin, out, stride))
            cin = out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.dropout(x))


def _conv_bn(cin, cout, kernel=3, stride=1, dilation=1):
    # tiny-det's block (src/nn/tiny-det.ts): the conv's weight at "<name>.weight", its BN at "<name>.bn.*", as qat
    # names them; the BN is a child of the Conv2d so the state_dict keys match and FX still sees Conv2d → BN → ReLU
    conv = nn.Conv2d(cin, cout, kernel, stride, dilation if kernel == 3 else 0, dilation=dilation, bias=False)
    conv.add_module("bn", nn.BatchNorm2d(cout))
    return conv


class TinyDet(nn.Module):
    """tiny-det (src/nn/tiny-det.ts) on 1×96×96: output [batch, classes + 4, 24, 24], heatmap logits then boxes."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.ModuleList([_conv_bn(1, 16, 3, 2), _conv_bn(16, 24, 3, 2)])
        self.body = nn.ModuleList([_conv_bn(24, 48, 3, 2), _conv_bn(48, 48), _conv_bn(48, 48, 3, 1, 2)])
        self.neck = nn.ModuleDict({"reduce": _conv_bn(72, 24, 1)})
        self.head = nn.ModuleDict({"conv": _conv_bn(24, 24), "cls": nn.Conv2d(24, classes, 1),
                                   "box": nn.Conv2d(24, 4, 1)})

    @staticmethod
    def _block(conv, x):
        # F.relu (not torch.relu): FX QAT fuses Conv → BN → F.relu into ConvBnReLU2d, one fake-quant per block
        return nn.functional.relu(conv.bn(conv(x)))

    def forward(self, x):
        c4 = self._block(self.stem[1], self._block(self.stem[0], x))
        y = c4
        for conv in self.body:
            y = self._block(conv, y)
        y = torch.cat([nn.functional.interpolate(y, scale_factor=2, mode="nearest"), c4], 1)
        y = self._block(self.head["conv"], self._block(self.neck["reduce"], y))
        return torch.cat([self.head["cls"](y), self.head["box"](y)], 1)


def _bn_residual():
    # the network bench/torch/export_bn_residual.py exports (qat's benches import that export at 3×32×32)
    from export_bn_residual import BnResidual
    return BnResidual()


MODELS = {"mnist-cnn": MnistCnn, "cifar-cnn": CifarCnn, "resnet8": ResNet8, "lenet5": LeNet5,
          "mobilenet-tiny": MobileNetTiny, "bn-residual": _bn_residual, "tiny-det": TinyDet}
INPUT = {"mnist-cnn": (1, 28, 28), "cifar-cnn": (3, 32, 32), "resnet8": (3, 32, 32), "lenet5": (1, 28, 28),
         "mobilenet-tiny": (3, 32, 32), "bn-residual": (3, 32, 32), "tiny-det": (1, 96, 96)}
# twins built from qat's dumped training graph (graph_twin.py): the scripts take --graph DIR for them
GRAPH_TWINS = {"blazeface"}
# models whose output is not class scores: trained with MSE against fixed random targets (bench/bench-models.ts)
REGRESSION = {"tiny-det", "blazeface"}


def build(name, graph=None):
    """The twin of qat's model `name` and one sample's input shape; graph twins need their dump folder."""
    if name in GRAPH_TWINS or graph:
        if not graph:
            raise SystemExit(f"{name} is rebuilt from qat's training graph: pass --graph DIR (bench/graph-dump.ts)")
        from graph_twin import GraphTwin
        twin = GraphTwin.load(graph)
        return twin, tuple(twin.input_shape)
    if name not in MODELS:
        known = ", ".join(sorted(MODELS) + sorted(GRAPH_TWINS))
        raise SystemExit(f"no PyTorch twin named {name!r}; available: {known}")
    return MODELS[name](), INPUT[name]


def batches(name, model, shape, batch):
    """Four random input batches and their targets: class labels, or for REGRESSION models standard-normal targets
    of the output's shape (probed on two samples in eval mode, so no BN statistics move)."""
    xs = [torch.randn((batch,) + tuple(shape)) for _ in range(4)]
    if name not in REGRESSION:
        return xs, [torch.randint(0, 10, (batch,)) for _ in range(4)]
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(xs[0][:2]).shape[1:]
    model.train(was)
    return xs, [torch.randn((batch,) + tuple(out)) for _ in range(4)]


def measure(model, xs, ys, batch, warmup, windows, per):
    """Samples/s of SGD (momentum 0.9) training steps on the prepared batches xs/ys, one rate per window.
    Loss: cross-entropy on class labels; MSE (mean over every element, as qat's regression loss) on float targets."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.functional.mse_loss if ys[0].is_floating_point() else nn.functional.cross_entropy

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[i % 4]), ys[i % 4])
        loss.backward()
        opt.step()

    for i in range(warmup):
        step(i)
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for i in range(per):
            step(i)
        rates.append(batch * per / (time.perf_counter() - t0))
    return rates
