import { NetBuilder } from "./builder.js";
import { type NetModel, NnError } from "./model.js";
import { tinyDet } from "./tiny-det.js";

export interface ZooOptions {
  /** Seed of the initial weights (default 0). */
  seed?: number;
  /** Number of classes (default 10). */
  classes?: number;
  /** One sample's shape [C, H, W] (default: the model's own, e.g. 3×32×32 for resnet8; MNIST gives 1×28×28). */
  inputShape?: number[];
}

type Options = Required<Omit<ZooOptions, "inputShape">> & { inputShape?: number[] };
type Factory = (o: Options) => NetModel;

/**
 * mnist-cnn: Conv(1→8,3×3,pad 1) ReLU MaxPool2 Conv(8→16,3×3,pad 1) ReLU MaxPool2 Flatten Linear(784→10).
 */
function mnistCnn(o: Options): NetModel {
  const b = new NetBuilder("mnist-cnn", o.inputShape ?? [1, 28, 28], o);
  let x = b.conv2d(b.input, { name: "conv1", out: 8, kernel: 3, padding: 1 });
  x = b.maxPool2d(b.relu(x), { kernel: 2 });
  x = b.conv2d(x, { name: "conv2", out: 16, kernel: 3, padding: 1 });
  x = b.maxPool2d(b.relu(x), { kernel: 2 });
  return b.build(b.linear(b.flatten(x), { name: "fc", out: o.classes }));
}

/**
 * cifar-cnn: Conv(3→32) ReLU Conv(32→32) ReLU MaxPool2 Conv(32→64) ReLU Conv(64→64) ReLU MaxPool2 Flatten
 * Linear(4096→128) ReLU Linear(128→10), all convs 3×3 pad 1.
 */
function cifarCnn(o: Options): NetModel {
  const b = new NetBuilder("cifar-cnn", o.inputShape ?? [3, 32, 32], o);
  const conv = (x: string, name: string, out: number): string =>
    b.relu(b.conv2d(x, { name, out, kernel: 3, padding: 1 }));
  let x = conv(conv(b.input, "conv1", 32), "conv2", 32);
  x = b.maxPool2d(x, { kernel: 2 });
  x = conv(conv(x, "conv3", 64), "conv4", 64);
  x = b.flatten(b.maxPool2d(x, { kernel: 2 }));
  x = b.relu(b.linear(x, { name: "fc1", out: 128 }));
  return b.build(b.linear(x, { name: "fc2", out: o.classes }));
}

/**
 * resnet8 (CIFAR, 3×32×32): stem Conv3×3→16 + BN + ReLU, three BasicBlocks (16, 32, 64 channels; stride 2 at the
 * second and third, with 1×1 conv + BN shortcuts), GlobalAveragePool, Linear. Names follow torchvision's ResNet
 * (`layer2.0.downsample.0.weight`).
 */
function resnet8(o: Options): NetModel {
  const b = new NetBuilder("resnet8", o.inputShape ?? [3, 32, 32], o);
  let x = b.conv2d(b.input, { name: "conv1", out: 16, kernel: 3, padding: 1, bias: false });
  x = b.relu(b.batchNorm2d(x, { name: "bn1" }));
  const block = (x: string, name: string, out: number, stride: number): string => {
    let y = b.conv2d(x, { name: `${name}.conv1`, out, kernel: 3, stride, padding: 1, bias: false });
    y = b.relu(b.batchNorm2d(y, { name: `${name}.bn1` }));
    y = b.conv2d(y, { name: `${name}.conv2`, out, kernel: 3, padding: 1, bias: false });
    y = b.batchNorm2d(y, { name: `${name}.bn2` });
    let shortcut = x;
    if (stride !== 1 || b.shape(x)[0] !== out) {
      shortcut = b.conv2d(x, { name: `${name}.downsample.0`, out, kernel: 1, stride, bias: false });
      shortcut = b.batchNorm2d(shortcut, { name: `${name}.downsample.1` });
    }
    return b.relu(b.add(y, shortcut));
  };
  x = block(x, "layer1.0", 16, 1);
  x = block(x, "layer2.0", 32, 2);
  x = block(x, "layer3.0", 64, 2);
  x = b.flatten(b.globalAvgPool(x));
  return b.build(b.linear(x, { name: "fc", out: o.classes }));
}

/** LeNet-5 (modernised: ReLU and max pooling) on 1×28×28: conv 5×5 (pad 2) →6, conv 5×5 →16, 120, 84, classes. */
function lenet5(o: Options): NetModel {
  const b = new NetBuilder("lenet5", o.inputShape ?? [1, 28, 28], o);
  let x = b.maxPool2d(b.relu(b.conv2d(b.input, { name: "conv1", out: 6, kernel: 5, padding: 2 })), {
    kernel: 2,
  });
  x = b.maxPool2d(b.relu(b.conv2d(x, { name: "conv2", out: 16, kernel: 5 })), { kernel: 2 });
  x = b.flatten(x);
  x = b.relu(b.linear(x, { name: "fc1", out: 120 }));
  x = b.relu(b.linear(x, { name: "fc2", out: 84 }));
  return b.build(b.linear(x, { name: "fc3", out: o.classes }));
}

/**
 * mobilenet-tiny (3×32×32): stem Conv3×3→16 + BN + ReLU6, then depthwise-separable blocks (depthwise 3×3 + BN +
 * ReLU6, pointwise 1×1 + BN + ReLU6) to 32 (stride 2), 64 (stride 2), 128 (stride 2), 128, GlobalAveragePool,
 * Dropout 0.2, Linear.
 */
function mobilenetTiny(o: Options): NetModel {
  const b = new NetBuilder("mobilenet-tiny", o.inputShape ?? [3, 32, 32], o);
  let x = b.conv2d(b.input, { name: "stem.conv", out: 16, kernel: 3, padding: 1, bias: false });
  x = b.relu6(b.batchNorm2d(x, { name: "stem.bn" }));
  const plan: [number, number][] = [
    [32, 2],
    [64, 2],
    [128, 2],
    [128, 1],
  ];
  plan.forEach(([out, stride], i) => {
    const c = b.shape(x)[0]!;
    const n = `blocks.${i}`;
    x = b.conv2d(x, { name: `${n}.dw`, out: c, kernel: 3, stride, padding: 1, groups: c, bias: false });
    x = b.relu6(b.batchNorm2d(x, { name: `${n}.dw_bn` }));
    x = b.conv2d(x, { name: `${n}.pw`, out, kernel: 1, bias: false });
    x = b.relu6(b.batchNorm2d(x, { name: `${n}.pw_bn` }));
  });
  x = b.dropout(b.flatten(b.globalAvgPool(x)), 0.2, "dropout");
  return b.build(b.linear(x, { name: "fc", out: o.classes }));
}

const ZOO: Record<string, Factory> = {
  "mnist-cnn": mnistCnn,
  "cifar-cnn": cifarCnn,
  resnet8,
  lenet5,
  "mobilenet-tiny": mobilenetTiny,
  "tiny-det": tinyDet,
};

export const zooNames = (): string[] => Object.keys(ZOO);

/** A model of the zoo by name, freshly initialised from `seed`. */
export function zooModel(name: string, opts: ZooOptions = {}): NetModel {
  const f = ZOO[name];
  if (!f) throw new NnError(`no model named '${name}' in the zoo; available: ${zooNames().join(", ")}`);
  return f({ seed: opts.seed ?? 0, classes: opts.classes ?? 10, inputShape: opts.inputShape });
}
