/**
 * The loss of a CenterNet-style detector (tiny-det) as training-step graph nodes, against the targets that
 * src/detect/targets.ts assigns in the data pipeline ([classes + 5, rows, cols] per image):
 *
 *   L = focal / max(1, positives) + λ · Σ w·(1 − IoU) / max(1, Σ w)
 *
 * - focal: CenterNet's penalty-reduced focal loss on the heatmap logits z against the Gaussian targets y:
 *   at a peak (y = 1) (1 − p)²·(−log p), elsewhere (1 − y)⁴·p²·(−log(1 − p)), with p = σ(z). It is written with
 *   −log σ(z) = softplus(−z) and −log(1 − σ(z)) = softplus(z), which never take the log of 0.
 * - IoU: the predicted distances d = softplus(raw) and the target distances t are measured from the same cell
 *   centre, so the boxes always overlap: I = (min(dl,tl) + min(dr,tr))·(min(dt,tt) + min(db,tb)),
 *   U = (dl+dr)(dt+db) + (tl+tr)(tt+tb) − I. min(a, b) = (a + b − |a − b|)/2 uses only ops that have gradient
 *   rules (Abs's subgradient at a tie is the mean of the two sides').
 *
 * Counts (positives, Σw) come from the targets, so no gradient flows through them.
 */
import type { Graph } from "../onnx/ir.js";
import { f32, i64 } from "../onnx/tensor.js";
import type { GraphLoss } from "./step.js";

export interface CenterNetLossOptions {
  classes: number;
  rows: number;
  cols: number;
  /** Weight λ of the box IoU term (default 2). */
  boxWeight?: number;
}

export function centerNetLoss(o: CenterNetLossOptions): GraphLoss {
  return {
    kind: "graph",
    name: "centernet",
    targetShape: [o.classes + 5, o.rows, o.cols],
    build: (g, output, targets) => buildCenterNetLoss(g, output, targets, o),
  };
}

function buildCenterNetLoss(g: Graph, output: string, targets: string, o: CenterNetLossOptions): string {
  const k = (name: string, v: number): string => g.constant(`det_loss.${name}`, f32([], [v]));
  const split = (x: string, sizes: number[], name: string): string[] =>
    g.add(
      "Split",
      [x, g.constant(`det_loss.${name}_sizes`, i64([sizes.length], sizes))],
      { axis: 1 },
      {
        outputs: sizes.length,
        name: `det_loss.${name}`,
      },
    );
  const sum = (x: string): string => g.op("ReduceSum", [x], { keepdims: 0 });
  const one = k("one", 1);

  const [z, ...raw] = split(output, [o.classes, 1, 1, 1, 1], "split_output");
  const [y, ...tgt] = split(targets, [o.classes, 1, 1, 1, 1, 1], "split_targets");
  const weight = tgt.pop()!;

  // heatmap focal loss
  // Where rather than Cast: the indicator takes the constants' dtype (float64 in gradient checks)
  const pos = g.op("Where", [g.op("Equal", [y!, one]), one, k("zero", 0)]);
  const notY = g.op("Sub", [one, y!]);
  const notY2 = g.op("Mul", [notY, notY]);
  const negW = g.op("Mul", [notY2, notY2]);
  const p = g.op("Sigmoid", [z!]);
  const q = g.op("Sigmoid", [g.op("Neg", [z!])]); // 1 − p, without cancellation
  const posTerm = g.op("Mul", [
    g.op("Mul", [pos, g.op("Mul", [q, q])]),
    g.op("Softplus", [g.op("Neg", [z!])]),
  ]);
  const negTerm = g.op("Mul", [g.op("Mul", [negW, g.op("Mul", [p, p])]), g.op("Softplus", [z!])]);
  const focal = g.op("Div", [sum(g.op("Add", [posTerm, negTerm])), g.op("Max", [sum(pos), one])]);

  // box IoU loss at weighted cells
  const d = raw.map((r) => g.op("Softplus", [r!]));
  const half = k("half", 0.5);
  const min = (a: string, b: string): string =>
    g.op("Mul", [g.op("Sub", [g.op("Add", [a, b]), g.op("Abs", [g.op("Sub", [a, b])])]), half]);
  const [dl, dt, dr, db] = d as [string, string, string, string];
  const [tl, tt, tr, tb] = tgt as [string, string, string, string];
  const inter = g.op("Mul", [
    g.op("Add", [min(dl, tl), min(dr, tr)]),
    g.op("Add", [min(dt, tt), min(db, tb)]),
  ]);
  const areaP = g.op("Mul", [g.op("Add", [dl, dr]), g.op("Add", [dt, db])]);
  const areaT = g.op("Mul", [g.op("Add", [tl, tr]), g.op("Add", [tt, tb])]);
  const union = g.op("Add", [g.op("Sub", [g.op("Add", [areaP, areaT]), inter]), k("eps", 1e-6)]);
  const iouLoss = g.op("Mul", [weight, g.op("Sub", [one, g.op("Div", [inter, union])])]);
  const box = g.op("Div", [sum(iouLoss), g.op("Max", [sum(weight), one])]);

  return g.op(
    "Add",
    [focal, g.op("Mul", [box, k("box_weight", o.boxWeight ?? 2)])],
    {},
    {
      name: "det_loss.total",
    },
  );
}
